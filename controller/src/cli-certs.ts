import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetwaveError } from '@fleetwave/shared';
import { type AgentSetup, agentConfigSnippet } from './api/agent-setup.js';
import { createCa, importCa, loadCa, revocationList } from './auth/certificates.js';
import { type ClientOptions, call } from './cli-client.js';
import type { FleetStore } from './store/fleet-store.js';

export interface CertFlags {
  cert?: boolean | undefined;
  csr?: string | undefined;
  cn?: string | undefined;
  days?: string | undefined;
  validity?: string | undefined;
  fingerprint?: string | undefined;
  out?: string | undefined;
  'ca-cert'?: string | undefined;
  'ca-key'?: string | undefined;
  'uplink-url'?: string | undefined;
  'agent-dir'?: string | undefined;
  tag?: string[] | undefined;
  hardware?: string | undefined;
  json?: boolean | undefined;
}

const days = (s: string | undefined) => {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 36_500) {
    throw new FleetwaveError('E_CONFIG_INVALID', `--days must be a whole number of days from 1, got "${s}"`);
  }
  return n;
};

const readFile = (file: string, what: string) => {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetwaveError('E_CONFIG_READ', `cannot read the ${what} ${file}: ${(err as Error).message}`);
  }
};

/** `fleetwave ca init | import`: the fleet CA in the data dir (local: the CA key never crosses the API). */
export async function runCaCommand(sub: string | undefined, v: CertFlags, dataDir: string): Promise<number> {
  if (sub === 'init') {
    const { certFile } = await createCa(dataDir, { ...(v.cn && { cn: v.cn }), ...(v.days && { days: days(v.days) }) });
    process.stdout.write(
      `fleet CA made: ${certFile} (its key beside it, ca.key, 0600: keep it there and back it up)\n` +
        'the TLS listener (--mqtts-port) now takes device certificates it issued; issue one with\n' +
        '  fleetwave device add <id> --cert --out <dir>   or   fleetwave device certify <id> --csr <file>\n',
    );
    return 0;
  }
  if (sub === 'import') {
    if (!v['ca-cert'] || !v['ca-key']) {
      throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave ca import --ca-cert <pem> --ca-key <pem>');
    }
    const { certFile } = await importCa(
      dataDir,
      readFile(v['ca-cert'], 'CA certificate'),
      readFile(v['ca-key'], 'CA key'),
    );
    process.stdout.write(`fleet CA imported: ${certFile}\n`);
    return 0;
  }
  throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave ca init [--cn <name>] [--days n] | ca import …');
}

/**
 * `broker mosquitto-config --cert`: the fleet CA (Mosquitto's cafile) and a CRL of every revoked certificate — those
 * revoked one by one and all of a revoked device's — into `dir`.
 */
export async function writeCaFiles(dir: string, dataDir: string, fleet: FleetStore): Promise<void> {
  const ca = await loadCa(dataDir);
  if (!ca) {
    throw new FleetwaveError(
      'E_CA_MISSING',
      `no fleet CA in ${dataDir}/ca: run fleetwave ca init --data-dir ${dataDir}`,
    );
  }
  const revoked: { serial: string; revokedAt: number }[] = [];
  for (const d of await fleet.listDevices()) {
    for (const c of await fleet.listCertificates(d.id)) {
      const at = c.revokedAt ?? d.revokedAt;
      if (at !== null) revoked.push({ serial: c.serial, revokedAt: at });
    }
  }
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'crl.pem'), await revocationList(ca, revoked));
}

interface Issued {
  certificate: string;
  key?: string;
  ca: string;
  fingerprint: string;
  notAfter: number;
}

/** The certificate commands that talk to the controller: device add --cert, certify, certs, revoke-cert. */
export async function runCertClientCommand(
  key: string,
  arg: string | undefined,
  v: CertFlags,
  client: ClientOptions,
): Promise<number | undefined> {
  const out = (data: unknown, human: () => string) =>
    process.stdout.write(v.json ? `${JSON.stringify(data, null, 2)}\n` : human());
  const need = (usage: string) => {
    if (!arg) throw new FleetwaveError('E_CONFIG_INVALID', `usage: fleetwave ${usage}`);
    return encodeURIComponent(arg);
  };
  if (key === 'device add' && v.cert) {
    const id = need('device add <id> --cert [--out dir] [--uplink-url mqtts://…]');
    const r = (await call(client, 'POST', '/api/devices', {
      id: arg,
      tags: Object.fromEntries((v.tag ?? []).map((t) => t.split(/=(.*)/s).slice(0, 2))),
      ...(v.hardware && { hardware: v.hardware }),
    })) as { agent: AgentSetup };
    const c = (await call(client, 'POST', `/api/devices/${id}/certificate`, {
      ...(v.days && { days: days(v.days) }),
      ...(v.validity && { validity: v.validity }),
    })) as Issued;
    const agentDir = v['agent-dir'] ?? '/etc/fleetwave';
    const config = agentConfigSnippet(r.agent, agentDir, { kind: 'cert', url: v['uplink-url'] ?? r.agent.uplinkUrl });
    if (v.out) {
      mkdirSync(v.out, { recursive: true });
      writeFileSync(join(v.out, 'agent.yaml'), config);
      writeFileSync(join(v.out, 'device.crt'), c.certificate);
      writeFileSync(join(v.out, 'device.key'), c.key!, { mode: 0o600 });
      writeFileSync(join(v.out, 'ca.pem'), c.ca);
    }
    out({ ...c, key: v.out ? undefined : c.key, agentConfig: config }, () =>
      v.out
        ? `device ${arg} registered with a certificate (fingerprint ${c.fingerprint}, until ${new Date(c.notAfter).toISOString()}).\n` +
          `wrote agent.yaml, device.crt, device.key (secret), ca.pem to ${v.out}: copy them to ${agentDir} on the device\n\n${config}`
        : `device ${arg} registered with a certificate (fingerprint ${c.fingerprint}).\n\n${c.certificate}\n` +
          `its key (shown once; better: --out <dir>, or a CSR made on the device with fleetwave-agent csr):\n${c.key}\n${config}`,
    );
    return 0;
  }
  if (key === 'device certify') {
    const id = need('device certify <id> --csr <file> [--days n] [--out <cert file>]');
    if (!v.csr) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave device certify <id> --csr <file>');
    const c = (await call(client, 'POST', `/api/devices/${id}/certificate`, {
      csr: readFile(v.csr, 'CSR'),
      ...(v.days && { days: days(v.days) }),
      ...(v.validity && { validity: v.validity }),
    })) as Issued;
    if (v.out) writeFileSync(v.out, c.certificate);
    out(
      c,
      () =>
        `certificate for ${arg}: fingerprint ${c.fingerprint}, until ${new Date(c.notAfter).toISOString()}\n` +
        (v.out ? `wrote ${v.out}: copy it to the device beside its key\n` : c.certificate),
    );
    return 0;
  }
  if (key === 'device certs') {
    const id = need('device certs <id>');
    const r = (await call(client, 'GET', `/api/devices/${id}/certificates`)) as {
      certificates: { fingerprint: string; notAfter: number; revokedAt: number | null }[];
    };
    out(r, () =>
      r.certificates.length === 0
        ? `no certificates for ${arg}\n`
        : `${r.certificates
            .map(
              (c) =>
                `${c.fingerprint}  until ${new Date(c.notAfter).toISOString()}  ${c.revokedAt ? `revoked ${new Date(c.revokedAt).toISOString()}` : c.notAfter < Date.now() ? 'expired' : 'valid'}`,
            )
            .join('\n')}\n`,
    );
    return 0;
  }
  if (key === 'device revoke-cert') {
    const id = need('device revoke-cert <id> [--fingerprint <sha256>]');
    const r = (await call(client, 'POST', `/api/devices/${id}/certificates/revoke`, {
      ...(v.fingerprint && { fingerprint: v.fingerprint }),
    })) as { revoked: number };
    out(r, () => `${r.revoked} certificate${r.revoked === 1 ? '' : 's'} of ${arg} revoked\n`);
    return 0;
  }
  return undefined;
}
