import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';

/** DER: a tag, its length and its content. */
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len =
    n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}
const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));

const OID_COMMON_NAME = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]);
const OID_ECDSA_SHA256 = Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

/**
 * A PKCS#10 certificate signing request for `commonName` (RFC 2986), signed with an EC key (ECDSA with SHA-256), as
 * PEM. Made with Node's crypto alone so a gateway needs no X.509 library: the subject is one CN, no attributes.
 */
export function certificateRequest(commonName: string, privateKey: KeyObject): string {
  if (privateKey.asymmetricKeyType !== 'ec') throw new Error('certificateRequest needs an EC private key');
  const name = seq(tlv(0x31, seq(OID_COMMON_NAME, tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const info = seq(Buffer.from([0x02, 0x01, 0x00]), name, spki, Buffer.from([0xa0, 0x00]));
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  const der = seq(info, seq(OID_ECDSA_SHA256), tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64.trimEnd()}\n-----END CERTIFICATE REQUEST-----\n`;
}

/** A new P-256 key (PKCS#8 PEM, to keep 0600 on the device) and a CSR for it with `commonName` as the subject. */
export function newKeyAndCsr(commonName: string): { keyPem: string; csrPem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    csrPem: certificateRequest(commonName, privateKey),
  };
}
