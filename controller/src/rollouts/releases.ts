import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  FleetwaveError,
  type SignedReleaseManifest,
  type TrustedKey,
  trustedKeyFromPem,
  verifyManifest,
} from '@fleetwave/shared';
import type { RolloutStore } from './rollout-store.js';

/** Loads the trusted keys: the given PEM files, or every `*.pem` in `<dataDir>/trusted-keys/`. */
export function loadTrustedKeys(dataDir: string, files?: readonly string[]): TrustedKey[] {
  const dir = join(dataDir, 'trusted-keys');
  const paths =
    files ??
    (existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.endsWith('.pem'))
          .map((f) => join(dir, f))
      : []);
  return paths.map((p) => {
    try {
      return trustedKeyFromPem(readFileSync(p, 'utf8'));
    } catch (err) {
      throw new FleetwaveError('E_KEY_INVALID', `trusted key ${p}: ${(err as Error).message}`);
    }
  });
}

/**
 * Releases: signed manifests verified on the way in, and their artifacts stored by SHA-256 (checked against the
 * manifest while they stream in), served over HTTP with Range requests.
 */
export class ReleaseService {
  private readonly dir: string;

  constructor(
    private readonly o: {
      store: RolloutStore;
      dataDir: string;
      trusted: () => readonly TrustedKey[];
      now: () => number;
    },
  ) {
    this.dir = join(o.dataDir, 'artifacts');
    mkdirSync(this.dir, { recursive: true });
  }

  /** The release keys manifests are verified against (public keys; `device add` hands them to agents). */
  trustedKeys(): readonly TrustedKey[] {
    return this.o.trusted();
  }

  /** Verifies and registers a manifest; registering the identical manifest again changes nothing. */
  async add(input: unknown): Promise<{ manifest: SignedReleaseManifest; added: boolean }> {
    const trusted = this.o.trusted();
    if (trusted.length === 0) {
      throw new FleetwaveError(
        'E_MANIFEST_UNTRUSTED_KEY',
        'the controller trusts no release key: put the public key in <data-dir>/trusted-keys/*.pem or pass --trusted-key',
      );
    }
    const manifest = verifyManifest(input, { trusted, now: this.o.now() });
    const r = await this.o.store.addRelease(manifest, this.o.now());
    if (r === 'different') {
      throw new FleetwaveError(
        'E_RELEASE_EXISTS',
        `${manifest.name}@${manifest.version} is registered with a different manifest: publish a new version`,
      );
    }
    return { manifest, added: r === 'added' };
  }

  async get(name: string, version: string): Promise<SignedReleaseManifest> {
    const m = await this.o.store.getRelease(name, version);
    if (!m)
      throw new FleetwaveError(
        'E_RELEASE_UNKNOWN',
        `release ${name}@${version} is not registered: fleetwave release add`,
      );
    return m;
  }

  private async artifactOf(name: string, version: string, artifact: string) {
    const a = (await this.get(name, version)).artifacts.find((x) => x.name === artifact);
    if (!a) throw new FleetwaveError('E_NOT_FOUND', `release ${name}@${version} has no artifact ${artifact}`);
    return a;
  }

  /** Stores an artifact upload, refusing it unless its size and SHA-256 are the manifest's. */
  async putArtifact(name: string, version: string, artifact: string, body: Readable): Promise<{ stored: boolean }> {
    const a = await this.artifactOf(name, version, artifact);
    const final = join(this.dir, a.sha256);
    if (existsSync(final)) {
      body.resume();
      return { stored: false };
    }
    const part = `${final}.${process.pid}.${Date.now()}.part`;
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        body,
        async function* (src) {
          for await (const chunk of src as AsyncIterable<Buffer>) {
            size += chunk.length;
            if (size > a.size)
              throw new FleetwaveError('E_ARTIFACT_SIZE', `${artifact} is larger than ${a.size} bytes`);
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(part),
      );
      if (size !== a.size)
        throw new FleetwaveError('E_ARTIFACT_SIZE', `${artifact} is ${size} bytes, the manifest says ${a.size}`);
      const sha = hash.digest('hex');
      if (sha !== a.sha256)
        throw new FleetwaveError('E_ARTIFACT_HASH', `${artifact} has SHA-256 ${sha}, the manifest says ${a.sha256}`);
      renameSync(part, final);
      return { stored: true };
    } finally {
      rmSync(part, { force: true });
    }
  }

  /** The stored file of an artifact, or undefined when it was not uploaded (the manifest may point elsewhere). */
  async artifactFile(
    name: string,
    version: string,
    artifact: string,
  ): Promise<{ path: string; size: number; sha256: string } | undefined> {
    const a = await this.artifactOf(name, version, artifact);
    const path = join(this.dir, a.sha256);
    return existsSync(path) ? { path, size: a.size, sha256: a.sha256 } : undefined;
  }
}
