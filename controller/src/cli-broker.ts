import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mosquittoHash, newSecret } from './auth/secrets.js';
import type { TopicRoots } from './broker/acl.js';
import { mosquittoFiles } from './broker/mosquitto-config.js';
import { writeCaFiles } from './cli-certs.js';
import { openDatabase } from './store/open-database.js';

/**
 * `fleetwave broker mosquitto-config`: the password file, ACL and config lines for an external Mosquitto, from the
 * registry; with `certs`, a TLS listener for fleet-CA certificates and its ca.pem and crl.pem.
 */
export async function writeMosquittoConfig(o: {
  out: string;
  dataDir: string;
  database: string | undefined;
  roots: TopicRoots;
  /** Where the roots came from, for the report: as given, as the controller ran, defaults. */
  rootsFrom: string;
  certs?: { port: number; certFile: string; keyFile: string };
}): Promise<void> {
  const { out, roots, certs } = o;
  const store = await openDatabase({ url: o.database, dataDir: o.dataDir });
  const password = newSecret();
  let files: ReturnType<typeof mosquittoFiles>;
  try {
    files = mosquittoFiles(
      await store.fleet.listDevices(),
      roots,
      { username: 'fleetwave-controller', mosquittoHash: mosquittoHash(password) },
      out,
      certs,
    );
    mkdirSync(out, { recursive: true });
    if (certs) await writeCaFiles(out, o.dataDir, store.fleet);
  } finally {
    await store.close();
  }
  writeFileSync(join(out, 'passwd'), files.passwd, { mode: 0o600 });
  writeFileSync(join(out, 'acl'), files.acl);
  writeFileSync(join(out, 'mosquitto.conf'), files.conf);
  process.stdout.write(
    `wrote ${out}/passwd, acl, mosquitto.conf${certs ? ', ca.pem, crl.pem' : ''} (topic root ${roots.root}, jobs root ${roots.jobsRoot}: ${o.rootsFrom})\n` +
      (certs
        ? `devices with fleet-CA certificates: mqtts://<mosquitto>:${certs.port} (regenerate crl.pem after revoking)\n`
        : '') +
      `controller broker user: fleetwave-controller, password (shown once): ${password}\n` +
      `run the controller with: fleetwave serve --external-broker mqtt://<mosquitto>:1883 --broker-username fleetwave-controller --broker-password <that password> --broker-connections 1 --topic-root ${roots.root} --jobs-root '${roots.jobsRoot}'\n`,
  );
}
