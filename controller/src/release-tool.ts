import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { FleetwaveError, keyIdOf, signManifest } from '@fleetwave/shared';
import { readInputFile } from './cli-client.js';

/** `release keygen` and `release sign`: local, offline (the private key never goes to the controller). */
export function releaseTool(
  sub: 'keygen' | 'sign',
  arg: string | undefined,
  v: { out?: string; key?: string },
): number {
  if (sub === 'keygen') {
    if (!v.out) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave release keygen --out <prefix>');
    if (existsSync(`${v.out}.key`))
      throw new FleetwaveError('E_CONFIG_INVALID', `${v.out}.key exists: not overwritten`);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(`${v.out}.key`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(`${v.out}.pem`, publicKey.export({ type: 'spki', format: 'pem' }));
    process.stdout.write(
      `wrote ${v.out}.key (private: keep it offline) and ${v.out}.pem (public, key id ${keyIdOf(publicKey)}): ` +
        `put the .pem in the controller's trusted-keys/ and the agents' updates.trustedKeys\n`,
    );
    return 0;
  }
  const usage = 'fleetwave release sign <body.json> --key <prefix.key> --out <manifest.json>';
  const text = readInputFile(arg, usage);
  const key = readInputFile(v.key, usage);
  if (!v.out) throw new FleetwaveError('E_CONFIG_INVALID', `usage: ${usage}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new FleetwaveError('E_PAYLOAD_JSON', `${arg} is not JSON: ${(err as Error).message}`);
  }
  if (body && typeof body === 'object' && 'signature' in body) {
    const { signature: _old, ...rest } = body as Record<string, unknown>;
    body = rest;
  }
  const signed = signManifest(body, key);
  writeFileSync(v.out, `${JSON.stringify(signed, null, 2)}\n`);
  process.stdout.write(`signed ${signed.name}@${signed.version} with key ${signed.signature.keyId}: ${v.out}\n`);
  return 0;
}
