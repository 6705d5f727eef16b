import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type SignedReleaseManifest, signManifest } from '@fleetwave/shared';
import { create } from 'tar';

export interface SigningKey {
  privateKey: KeyObject;
  publicPem: string;
}

export function signingKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/**
 * A new release key that the controller with data directory `ctlDir` trusts: its public half in
 * `<ctlDir>/trusted-keys/release.pem` (`pemFile`, which agents in the test may trust too).
 */
export function trustedKey(ctlDir: string): SigningKey & { pemFile: string } {
  const key = signingKey();
  const pemFile = join(ctlDir, 'trusted-keys', 'release.pem');
  mkdirSync(dirname(pemFile), { recursive: true });
  writeFileSync(pemFile, key.publicPem);
  return { ...key, pemFile };
}

/** A tar.gz of an application version: the given files (name → content) in a directory laid out for the test. */
export async function appArchive(dir: string, version: string, files: Record<string, string>): Promise<string> {
  const src = join(dir, `src-${version}`);
  mkdirSync(src, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(src, name), content);
  const out = join(dir, `app-${version}.tar.gz`);
  await create({ gzip: true, file: out, cwd: src, portable: true }, Object.keys(files));
  return out;
}

export function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** A signed `files` release of `gateway-app` whose one artifact is served by the controller (a relative URL). */
export function filesRelease(
  key: SigningKey,
  version: string,
  archive: string,
  over: Record<string, unknown> = {},
): SignedReleaseManifest {
  return signManifest(
    {
      schema: 1,
      name: 'gateway-app',
      version,
      hardware: ['rpi3', 'rpi4'],
      artifacts: [
        { name: 'app.tar.gz', url: './app.tar.gz', size: readFileSync(archive).length, sha256: sha256(archive) },
      ],
      install: { type: 'files', target: 'gateway-app' },
      createdAt: '2026-01-01T00:00:00Z',
      ...over,
    },
    key.privateKey,
  );
}

/** Registers a release and uploads its artifact through the API. */
export async function publishRelease(base: string, token: string, manifest: SignedReleaseManifest, archive: string) {
  const add = await fetch(`${base}/api/releases`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(manifest),
  });
  if (add.status !== 200) throw new Error(`release add: ${add.status} ${await add.text()}`);
  const put = await fetch(`${base}/api/releases/${manifest.name}/${manifest.version}/artifacts/app.tar.gz`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: readFileSync(archive),
  });
  if (put.status !== 200) throw new Error(`artifact upload: ${put.status} ${await put.text()}`);
}
