import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.js';
import { decodeJson } from './decode.js';
import { FleetwaveError } from './errors.js';
import { signManifest, trustedKeyFromPem, verifyManifest } from './signing.js';

const example = JSON.parse(
  readFileSync(new URL('../../firmware-manifests/examples/gateway-app-1.2.0.json', import.meta.url), 'utf8'),
);

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, trusted: trustedKeyFromPem(publicKey.export({ format: 'pem', type: 'spki' }).toString()) };
}

const now = Date.parse('2026-06-01T00:00:00Z');

describe('release manifest signing', () => {
  const a = keyPair();
  const b = keyPair();
  const signed = signManifest(example, a.privateKey);

  it('verifies with the signing key among several trusted keys', () => {
    expect(verifyManifest(signed, { trusted: [b.trusted, a.trusted], now }).version).toBe('1.2.0');
    expect(signed.signature.keyId).toBe(a.trusted.keyId);
  });

  it('is canonical: key order and whitespace do not matter', () => {
    const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(signed).reverse()), null, 2));
    expect(verifyManifest(reordered, { trusted: [a.trusted], now })).toEqual(signed);
  });

  it('detects tampering with any byte of the signed manifest', () => {
    const text = canonicalJson(signed);
    let detected = 0;
    for (let i = 0; i < text.length; i++) {
      for (const delta of [1, 7]) {
        const bytes = Buffer.from(text);
        bytes[i] = (bytes[i]! + delta) % 256;
        try {
          verifyManifest(decodeJson(bytes), { trusted: [a.trusted], now });
          throw new Error(`tampered byte ${i} (+${delta}) was accepted`);
        } catch (err) {
          expect(err, `byte ${i}`).toBeInstanceOf(FleetwaveError);
          detected++;
        }
      }
    }
    expect(detected).toBe(text.length * 2);
  });

  it('refuses an untrusted key, an unsigned manifest and an expired one', () => {
    expect(() => verifyManifest(signed, { trusted: [b.trusted], now })).toThrow(
      expect.objectContaining({ code: 'E_MANIFEST_UNTRUSTED_KEY' }),
    );
    const forged = {
      ...signManifest(example, b.privateKey),
      signature: { ...signed.signature, value: signManifest(example, b.privateKey).signature.value },
    };
    expect(() => verifyManifest(forged, { trusted: [a.trusted], now })).toThrow(
      expect.objectContaining({ code: 'E_MANIFEST_SIGNATURE' }),
    );
    expect(() => verifyManifest(example, { trusted: [a.trusted], now })).toThrow(
      expect.objectContaining({ code: 'E_MANIFEST_UNSIGNED' }),
    );
    const expiring = signManifest({ ...example, expiresAt: '2026-03-01T00:00:00Z' }, a.privateKey);
    expect(() => verifyManifest(expiring, { trusted: [a.trusted], now })).toThrow(
      expect.objectContaining({ code: 'E_MANIFEST_EXPIRED' }),
    );
    expect(verifyManifest(expiring, { trusted: [a.trusted], now: Date.parse('2026-02-01T00:00:00Z') }).name).toBe(
      'gateway-app',
    );
  });

  it('refuses keys that are not Ed25519', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => trustedKeyFromPem(rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString())).toThrow(
      expect.objectContaining({ code: 'E_KEY_INVALID' }),
    );
    expect(() => trustedKeyFromPem('not a key')).toThrow(expect.objectContaining({ code: 'E_KEY_INVALID' }));
    expect(() => signManifest(example, rsa.privateKey)).toThrow(expect.objectContaining({ code: 'E_KEY_INVALID' }));
  });
});
