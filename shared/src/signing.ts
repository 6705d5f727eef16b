import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { parseWith } from './decode.js';
import { FleetwaveError } from './errors.js';
import {
  ReleaseManifestBody,
  type SignedReleaseManifest,
  SignedReleaseManifest as SignedSchema,
} from './schemas/manifest.js';

/** A public key the device trusts, with an id derived from the key itself. */
export interface TrustedKey {
  keyId: string;
  key: KeyObject;
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

/** keyId = the first 16 hex digits of SHA-256 over the raw 32-byte Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 16);
}

/** Loads a trusted Ed25519 public key from PEM (SPKI). Throws E_KEY_INVALID. */
export function trustedKeyFromPem(pem: string): TrustedKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new FleetwaveError('E_KEY_INVALID', `public key cannot be read: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new FleetwaveError('E_KEY_INVALID', 'public key is not Ed25519');
  return { keyId: keyIdOf(key), key };
}

/** Signs a manifest body (validated first) with an Ed25519 private key (PEM or KeyObject). */
export function signManifest(body: unknown, privateKey: KeyObject | string): SignedReleaseManifest {
  const parsed = parseWith(ReleaseManifestBody, body, 'release manifest');
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  if (key.asymmetricKeyType !== 'ed25519') throw new FleetwaveError('E_KEY_INVALID', 'signing key is not Ed25519');
  const value = sign(null, Buffer.from(canonicalJson(parsed)), key).toString('base64');
  return parseWith(SignedSchema, {
    ...parsed,
    signature: { alg: 'ed25519', keyId: keyIdOf(createPublicKey(key)), value },
  });
}

export interface VerifyOptions {
  trusted: readonly TrustedKey[];
  /** Checked against expiresAt; pass the injected clock's time. */
  now: number;
}

/**
 * Validates and verifies a signed manifest against the trusted keys. Throws E_SCHEMA, E_MANIFEST_UNSIGNED,
 * E_MANIFEST_UNTRUSTED_KEY, E_MANIFEST_SIGNATURE or E_MANIFEST_EXPIRED.
 */
export function verifyManifest(input: unknown, opts: VerifyOptions): SignedReleaseManifest {
  if (input && typeof input === 'object' && !('signature' in input)) throw new FleetwaveError('E_MANIFEST_UNSIGNED');
  const manifest = parseWith(SignedSchema, input, 'release manifest');
  const { signature, ...body } = manifest;
  const trusted = opts.trusted.find((k) => k.keyId === signature.keyId);
  if (!trusted) {
    throw new FleetwaveError(
      'E_MANIFEST_UNTRUSTED_KEY',
      `manifest is signed with key ${signature.keyId}, not trusted`,
      {
        keyId: signature.keyId,
      },
    );
  }
  const sig = Buffer.from(signature.value, 'base64');
  // Node's base64 decoder ignores the unused low bits of the last character; insist on the one canonical spelling.
  const ok =
    sig.toString('base64') === signature.value && verify(null, Buffer.from(canonicalJson(body)), trusted.key, sig);
  if (!ok)
    throw new FleetwaveError('E_MANIFEST_SIGNATURE', `signature of ${manifest.name}@${manifest.version} is invalid`);
  if (manifest.expiresAt && Date.parse(manifest.expiresAt) <= opts.now) {
    throw new FleetwaveError('E_MANIFEST_EXPIRED', `manifest expired at ${manifest.expiresAt}`);
  }
  return manifest;
}
