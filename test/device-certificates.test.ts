import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateFingerprint, createCa, issueDeviceCertificate, loadCa } from '@fleetwave/controller';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  AGENT_CLI,
  api,
  cleanupAfterEach,
  controllerCli,
  freePort,
  haveBinary,
  selfSignedCert,
  sensor,
  spawnAgent,
  spawnController,
  startMosquitto,
  tmp,
  waitFor,
  waitForAsync,
} from './helpers.js';

const cleanups = cleanupAfterEach();
const openssl = haveBinary('openssl');

/** One CONNECT over TLS with a client certificate: 0 when connected, else the CONNACK code (-1: no CONNACK). */
function connectWith(url: string, clientId: string, tls: { key: string; cert: string; ca: Buffer }): Promise<number> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { clientId, reconnectPeriod: 0, connectTimeout: 20_000, ...tls });
    c.once('connect', () => {
      resolve(0);
      c.end(true);
    });
    c.once('error', (err: Error & { code?: unknown }) => {
      resolve(typeof err.code === 'number' ? err.code : -1);
      c.end(true);
    });
    c.once('close', () => resolve(-1));
  });
}

describe.skipIf(!openssl)('devices with X.509 client certificates from the fleet CA (embedded broker, TLS)', () => {
  it('an agent signs in with a certificate the controller issued; revoked, expired, foreign and mismatched ones are refused and audited', async () => {
    const dir = tmp('certs');
    const ctlDir = join(dir, 'ctl');
    const init = await controllerCli('ca', 'init', '--data-dir', ctlDir, '--cn', 'Test fleet CA');
    expect(init.code, init.err).toBe(0);
    expect(init.out).toMatch(/fleet CA made: .*ca\.pem/);
    const server = selfSignedCert(dir); // the broker's own certificate (CN localhost, IP 127.0.0.1)
    const serverCa = readFileSync(server.cert);
    const ctl = await spawnController(ctlDir, [
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--mqtts-port',
      '0',
      '--tls-cert',
      server.cert,
      '--tls-key',
      server.key,
    ]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const tlsUrl = `mqtts://127.0.0.1:${ctl.mqtts}`;
    const client = ['--url', ctl.url, '--token', ctl.adminToken];

    // 1. device add --cert: the files an agent starts from; the agent signs in with the certificate, no token
    const out = join(dir, 'gw-c');
    const add = await controllerCli(
      'device',
      'add',
      'gw-c',
      '--cert',
      '--out',
      out,
      '--agent-dir',
      out,
      '--uplink-url',
      tlsUrl,
      ...client,
    );
    expect(add.code, add.err).toBe(0);
    const config = readFileSync(join(out, 'agent.yaml'), 'utf8');
    expect(config).toContain(`certFile: ${out}/device.crt`);
    expect(config).not.toMatch(/tokenFile|username/);
    writeFileSync(join(out, 'ca.pem'), serverCa); // the broker's certificate is self-signed here, not the fleet CA's
    const agent = await spawnAgent(['--config', join(out, 'agent.yaml'), '--listen', '127.0.0.1:0']);
    cleanups.push(() => agent.kill('SIGKILL'));
    const s = await sensor(agent.ingestUrl, 's1');
    cleanups.push(() => s.client.endAsync(true));
    expect(await s.send('sensors/s1/temp', 21.5)).toBe(true);
    await waitForAsync(
      'the reading stored',
      async () => {
        const r = await api(ctl.url, ctl.adminToken, 'GET', '/api/telemetry?device=gw-c');
        return r.body.records.length >= 1;
      },
      60_000,
    );

    // 2. a CSR made on the device (fleetwave-agent csr), signed by the controller: the key never left the device
    expect((await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'gw-d' })).status).toBe(201);
    const key = join(dir, 'gw-d.key');
    execFileSync(process.execPath, [
      AGENT_CLI,
      'csr',
      '--device-id',
      'gw-d',
      '--key',
      key,
      '--out',
      join(dir, 'gw-d.csr'),
    ]);
    const certify = await controllerCli(
      'device',
      'certify',
      'gw-d',
      '--csr',
      join(dir, 'gw-d.csr'),
      '--out',
      join(dir, 'gw-d.crt'),
      ...client,
    );
    expect(certify.code, certify.err).toBe(0);
    const d = { key: readFileSync(key, 'utf8'), cert: readFileSync(join(dir, 'gw-d.crt'), 'utf8'), ca: serverCa };
    expect(await connectWith(tlsUrl, 'gw-d', d)).toBe(0);
    // the CN is the identity: another client id with it is refused
    expect(await connectWith(tlsUrl, 'gw-c', d)).toBe(5);

    // 3. refused: from another CA; expired; for a device the registry does not have; revoked
    const otherDir = join(dir, 'other-ca');
    await createCa(otherDir);
    const foreign = await issueDeviceCertificate((await loadCa(otherDir))!, 'gw-d');
    expect(await connectWith(tlsUrl, 'gw-d', { key: foreign.keyPem!, cert: foreign.certPem, ca: serverCa })).toBe(5);
    const fleetCa = (await loadCa(ctlDir))!;
    const past = Date.now() - 10 * 86_400_000;
    const expired = await issueDeviceCertificate(fleetCa, 'gw-d', { notBefore: past, notAfter: past + 86_400_000 });
    expect(await connectWith(tlsUrl, 'gw-d', { key: expired.keyPem!, cert: expired.certPem, ca: serverCa })).toBe(5);
    const stranger = await issueDeviceCertificate(fleetCa, 'gw-nobody');
    expect(
      await connectWith(tlsUrl, 'gw-nobody', { key: stranger.keyPem!, cert: stranger.certPem, ca: serverCa }),
    ).toBe(5);
    // signed by the fleet CA but never recorded by the registry (a copy of the CA key elsewhere)
    const unrecorded = await issueDeviceCertificate(fleetCa, 'gw-d');
    expect(await connectWith(tlsUrl, 'gw-d', { key: unrecorded.keyPem!, cert: unrecorded.certPem, ca: serverCa })).toBe(
      5,
    );
    const revoke = await controllerCli('device', 'revoke-cert', 'gw-d', ...client);
    expect(revoke.out).toMatch(/1 certificate of gw-d revoked/);
    expect(await connectWith(tlsUrl, 'gw-d', d)).toBe(5);
    const listed = await controllerCli('device', 'certs', 'gw-d', ...client);
    expect(listed.out).toMatch(/revoked/);

    const audit = (await api(ctl.url, ctl.adminToken, 'GET', '/api/audit?limit=200')).body.entries as {
      action: string;
      outcome: string;
      details: string;
    }[];
    const why = audit.filter((e) => e.action === 'mqtt.connect' && e.outcome === 'denied').map((e) => e.details);
    expect(why).toEqual(
      expect.arrayContaining([
        'client id must be the certificate CN',
        expect.stringMatching(/^certificate not trusted: /),
        'certificate not trusted: CERT_HAS_EXPIRED',
        'certificate CN is not a registered device',
        'certificate not issued by this registry',
        'certificate revoked',
      ]),
    );
    // a wrong token is still refused on the same listener, and a right one still taken (certificates not required)
    const token = (await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'gw-t' })).body.token as string;
    const withToken = await mqtt.connectAsync(tlsUrl, {
      clientId: 'gw-t',
      username: 'gw-t',
      password: token,
      ca: serverCa,
      reconnectPeriod: 0,
    });
    await withToken.endAsync();
  }, 120_000);

  it.skipIf(!haveBinary('mosquitto'))(
    'through Mosquitto with the generated certificate listener: the CN is the username under the same ACL; revoked and foreign refused',
    async () => {
      const dir = tmp('certs-mosq');
      const ctlDir = join(dir, 'ctl');
      expect((await controllerCli('ca', 'init', '--data-dir', ctlDir)).code).toBe(0);
      const ctl = await spawnController(ctlDir, ['--mqtt-port', '0', '--http-port', '0']);
      const client = ['--url', ctl.url, '--token', ctl.adminToken];
      for (const id of ['gw-m', 'gw-r']) {
        const add = await controllerCli('device', 'add', id, '--cert', '--out', join(dir, id), ...client);
        expect(add.code, add.err).toBe(0);
      }
      expect((await controllerCli('device', 'revoke-cert', 'gw-r', ...client)).out).toMatch(/1 certificate/);
      await ctl.kill('SIGTERM');

      const server = selfSignedCert(dir);
      const out = join(dir, 'mosq');
      const tlsPort = await freePort();
      const gen = await controllerCli(
        'broker',
        'mosquitto-config',
        '--out',
        out,
        '--data-dir',
        ctlDir,
        '--cert',
        '--tls-cert',
        server.cert,
        '--tls-key',
        server.key,
        '--mqtts-port',
        String(tlsPort),
      );
      expect(gen.code, gen.err).toBe(0);
      expect(gen.out).toMatch(/ca\.pem, crl\.pem/);
      const password = /password \(shown once\): (\S+)/.exec(gen.out)![1]!;
      for (const d of [dir, out]) chmodSync(d, 0o755); // mosquitto reads them as its own user
      for (const f of [...readdirSync(out).map((f) => join(out, f)), server.key, server.cert]) chmodSync(f, 0o644);
      const conf = readFileSync(join(out, 'mosquitto.conf'), 'utf8');
      expect(conf).toMatch(/require_certificate true\nuse_identity_as_username true\ncrlfile /);
      // the generated listener binds every interface; this test keeps to 127.0.0.1
      const broker = await startMosquitto(
        `allow_anonymous false\n${conf.replace(`listener ${tlsPort}`, `listener ${tlsPort} 127.0.0.1`)}`,
      );
      cleanups.push(() => broker.stop());
      const tlsUrl = `mqtts://127.0.0.1:${tlsPort}`;
      const serverCa = readFileSync(server.cert);
      const files = (id: string) => ({
        key: readFileSync(join(dir, id, 'device.key'), 'utf8'),
        cert: readFileSync(join(dir, id, 'device.crt'), 'utf8'),
        ca: serverCa,
      });

      // the controller's user sees what gw-m publishes under its own topics, signed in by its certificate alone
      const controller = await mqtt.connectAsync(broker.url, {
        clientId: 'fleetwave-controller',
        username: 'fleetwave-controller',
        password,
        reconnectPeriod: 0,
      });
      cleanups.push(() => controller.endAsync(true));
      await controller.subscribeAsync('fleetwave/devices/+/telemetry', { qos: 1 });
      const got = new Promise<string>((r) => controller.once('message', (topic) => r(topic)));
      const m = await mqtt.connectAsync(tlsUrl, { clientId: 'gw-m', reconnectPeriod: 0, ...files('gw-m') });
      cleanups.push(() => m.endAsync(true));
      // the same ACL: a publish under another device's topics is dropped (Mosquitto acknowledges it and delivers
      // nothing), so the first message the controller gets is gw-m's own, sent after it
      await m.publishAsync('fleetwave/devices/gw-r/telemetry', 'forged', { qos: 1 });
      await m.publishAsync('fleetwave/devices/gw-m/telemetry', 'x', { qos: 1 });
      expect(await got).toBe('fleetwave/devices/gw-m/telemetry');

      // revoked (in crl.pem) and from another CA: the handshake fails, no session
      expect(await connectWith(tlsUrl, 'gw-r', files('gw-r'))).toBe(-1);
      const otherDir = join(dir, 'other-ca');
      await createCa(otherDir);
      const foreign = await issueDeviceCertificate((await loadCa(otherDir))!, 'gw-m');
      expect(await connectWith(tlsUrl, 'gw-m', { key: foreign.keyPem!, cert: foreign.certPem, ca: serverCa })).toBe(-1);
    },
    120_000,
  );

  it('with --require-client-cert the TLS listener takes certificates only; without a CA that flag is refused', async () => {
    const dir = tmp('certs-only');
    const ctlDir = join(dir, 'ctl');
    const server = selfSignedCert(dir);
    const tlsArgs = [
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--mqtts-port',
      '0',
      '--tls-cert',
      server.cert,
      '--tls-key',
      server.key,
    ];
    const none = await controllerCli('serve', '--data-dir', ctlDir, ...tlsArgs, '--require-client-cert');
    expect(none.code).toBe(78);
    expect(none.err).toMatch(/E_CA_MISSING: --require-client-cert needs a client CA: run fleetwave ca init/);
    expect((await controllerCli('ca', 'init', '--data-dir', ctlDir)).code).toBe(0);
    const ctl = await spawnController(ctlDir, [...tlsArgs, '--require-client-cert']);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const token = (await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'gw-t' })).body.token as string;
    const code = await new Promise<number>((resolve) => {
      const c = mqtt.connect(`mqtts://127.0.0.1:${ctl.mqtts}`, {
        clientId: 'gw-t',
        username: 'gw-t',
        password: token,
        ca: readFileSync(server.cert),
        reconnectPeriod: 0,
      });
      c.once('connect', () => resolve(0));
      c.once('error', (e: Error & { code?: number }) => resolve(e.code ?? -1));
    });
    expect(code).toBe(5);
    // the plain listener still takes the token
    const plain = await mqtt.connectAsync(`mqtt://127.0.0.1:${ctl.mqtt}`, {
      clientId: 'gw-t',
      username: 'gw-t',
      password: token,
      reconnectPeriod: 0,
    });
    await plain.endAsync();
  }, 60_000);

  it('the agent renews a short-lived certificate by itself before it expires, and every reading arrives', async () => {
    const dir = tmp('certs-renew');
    const ctlDir = join(dir, 'ctl');
    expect((await controllerCli('ca', 'init', '--data-dir', ctlDir)).code).toBe(0);
    const server = selfSignedCert(dir);
    const ctl = await spawnController(ctlDir, [
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--mqtts-port',
      '0',
      '--tls-cert',
      server.cert,
      '--tls-key',
      server.key,
      '--require-client-cert',
    ]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const client = ['--url', ctl.url, '--token', ctl.adminToken];
    const out = join(dir, 'gw-n');
    // 40 s of validity: due a third of its lifetime before it ends (renewBefore, 30 days by default, is longer)
    const add = await controllerCli(
      'device',
      'add',
      'gw-n',
      '--cert',
      '--validity',
      '40s',
      '--out',
      out,
      '--agent-dir',
      out,
      '--uplink-url',
      `mqtts://127.0.0.1:${ctl.mqtts}`,
      ...client,
    );
    expect(add.code, add.err).toBe(0);
    writeFileSync(join(out, 'ca.pem'), readFileSync(server.cert));
    const first = certificateFingerprint(readFileSync(join(out, 'device.crt')));
    const agent = await spawnAgent([
      '--config',
      join(out, 'agent.yaml'),
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      'info',
    ]);
    cleanups.push(() => agent.kill('SIGKILL'));
    const s = await sensor(agent.ingestUrl, 's1');
    cleanups.push(() => s.client.endAsync(true));
    let sent = 0;
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) expect(await s.send('sensors/s1/temp', ++sent)).toBe(true);
    };
    await send(5);
    // the renewal: a new key and CSR from the agent, the certificate from the controller, the pair swapped on disk
    await waitForAsync(
      'the certificate renewed',
      async () => {
        const r = await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-n/certificates');
        return r.body.certificates.length >= 2 && /certificate renewed/.test(agent.stdout() + agent.stderr());
      },
      90_000,
    );
    const now = certificateFingerprint(readFileSync(join(out, 'device.crt')));
    expect(now).not.toBe(first);
    const listed = (await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-n/certificates')).body.certificates as {
      fingerprint: string;
    }[];
    expect(listed.map((c) => c.fingerprint)).toContain(now);
    // the old certificate revoked: the session ends, and the agent is back on the new one (only certificates here)
    expect((await controllerCli('device', 'revoke-cert', 'gw-n', '--fingerprint', first, ...client)).code).toBe(0);
    await send(5);
    const values = async () => {
      const r = await api(ctl.url, ctl.adminToken, 'GET', '/api/telemetry?device=gw-n&limit=1000');
      return (r.body.records as { record: { kind: string; stream: string; value: number } }[])
        .filter((x) => x.record.kind === 'reading' && !x.record.stream.startsWith('_'))
        .map((x) => x.record.value)
        .sort((a, b) => a - b);
    };
    await waitForAsync('every reading stored', async () => (await values()).length >= 10, 90_000);
    expect(await values()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]); // each once
    const audit = (await api(ctl.url, ctl.adminToken, 'GET', '/api/audit?limit=200')).body.entries as {
      action: string;
      outcome: string;
    }[];
    expect(audit.some((e) => e.action === 'device.certificate.renew' && e.outcome === 'ok')).toBe(true);
  }, 180_000);

  it('ends a session when its certificate expires, and refuses that certificate from then on', async () => {
    const dir = tmp('certs-expire');
    const ctlDir = join(dir, 'ctl');
    expect((await controllerCli('ca', 'init', '--data-dir', ctlDir)).code).toBe(0);
    const server = selfSignedCert(dir);
    const ctl = await spawnController(ctlDir, [
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--mqtts-port',
      '0',
      '--tls-cert',
      server.cert,
      '--tls-key',
      server.key,
    ]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const out = join(dir, 'gw-x');
    const client = ['--url', ctl.url, '--token', ctl.adminToken];
    expect(
      (await controllerCli('device', 'add', 'gw-x', '--cert', '--validity', '12s', '--out', out, ...client)).code,
    ).toBe(0);
    const tls = {
      key: readFileSync(join(out, 'device.key'), 'utf8'),
      cert: readFileSync(join(out, 'device.crt'), 'utf8'),
      ca: readFileSync(server.cert),
    };
    const url = `mqtts://127.0.0.1:${ctl.mqtts}`;
    const c = await mqtt.connectAsync(url, { clientId: 'gw-x', reconnectPeriod: 0, ...tls });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    cleanups.push(() => c.endAsync(true));
    await closed; // by the broker, when the certificate ran out (about 12 s after it was issued)
    // the controller's log line arrives through its stdout pipe, maybe after the close reached this client
    await waitFor('the expiry logged', () => /client certificate expired: session closed/.test(ctl.stdout()), 20_000);
    expect(await connectWith(url, 'gw-x', tls)).toBe(5);
  }, 90_000);
});
