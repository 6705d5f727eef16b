import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { createPrivateKey, createPublicKey, X509Certificate as NodeX509, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetwaveError } from '@fleetwave/shared';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const subtle = webcrypto.subtle;

/** The fleet CA: its certificate and the key it signs device certificates with. */
export interface FleetCa {
  certPem: string;
  cert: x509.X509Certificate;
  signingKey: CryptoKey;
  algorithm: webcrypto.EcdsaParams & webcrypto.EcKeyImportParams;
}

export interface IssuedCertificate {
  certPem: string;
  /** The device's key, when the controller made it (no CSR): shown once, never stored. */
  keyPem?: string;
  /** SHA-256 of the DER, lower-case hex without colons: what the registry and the broker know it by. */
  fingerprint: string;
  serial: string;
  notBefore: number;
  notAfter: number;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const caFiles = (dataDir: string) => ({ cert: join(dataDir, 'ca', 'ca.pem'), key: join(dataDir, 'ca', 'ca.key') });

const pkcs8Pem = (der: ArrayBuffer) =>
  `-----BEGIN PRIVATE KEY-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END PRIVATE KEY-----\n`;

/** SHA-256 fingerprint of a certificate (PEM or DER) as lower-case hex without colons. */
export function certificateFingerprint(cert: string | Buffer): string {
  return new NodeX509(cert).fingerprint256.replaceAll(':', '').toLowerCase();
}

/** The fleet CA's certificate file, if one was made or imported (the broker's client CA). */
export function caCertificateFile(dataDir: string): string | undefined {
  const f = caFiles(dataDir).cert;
  return existsSync(f) ? f : undefined;
}

/** Makes a fleet CA (P-256, self-signed, `days` valid) in `<dataDir>/ca/`; refuses to replace one. */
export async function createCa(dataDir: string, o: { cn?: string; days?: number } = {}): Promise<{ certFile: string }> {
  const files = caFiles(dataDir);
  if (existsSync(files.cert) || existsSync(files.key)) {
    throw new FleetwaveError(
      'E_CONFIG_INVALID',
      `${files.cert} exists: a fleet has one CA (every device certificate hangs on it); move it away first to start over`,
    );
  }
  const keys = (await subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=${(o.cn ?? 'Fleetwave fleet CA').replaceAll(/[,=+<>#;\\"]/g, ' ')}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (o.days ?? 3650) * 86_400_000),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  mkdirSync(join(dataDir, 'ca'), { recursive: true, mode: 0o700 });
  writeFileSync(files.key, pkcs8Pem(await subtle.exportKey('pkcs8', keys.privateKey)), { mode: 0o600 });
  writeFileSync(files.cert, cert.toString('pem'));
  return { certFile: files.cert };
}

/** Takes an existing CA (bring your own): its certificate must be a CA's and the key must be its key. */
export async function importCa(dataDir: string, certPem: string, keyPem: string): Promise<{ certFile: string }> {
  const files = caFiles(dataDir);
  if (existsSync(files.cert)) {
    throw new FleetwaveError('E_CONFIG_INVALID', `${files.cert} exists: move it away first to import another CA`);
  }
  let cert: NodeX509;
  try {
    cert = new NodeX509(certPem);
    if (!cert.ca) throw new Error('it is not a CA certificate (basicConstraints CA:TRUE)');
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the key is not this certificate’s key');
  } catch (err) {
    throw new FleetwaveError('E_CERT_INVALID', `cannot import the CA: ${(err as Error).message}`);
  }
  await signingKeyOf(keyPem); // a key type the controller can sign with
  mkdirSync(join(dataDir, 'ca'), { recursive: true, mode: 0o700 });
  writeFileSync(files.key, keyPem, { mode: 0o600 });
  writeFileSync(files.cert, cert.toString());
  return { certFile: files.cert };
}

async function signingKeyOf(keyPem: string): Promise<{ key: CryptoKey; algorithm: FleetCa['algorithm'] }> {
  const k = createPrivateKey(keyPem);
  const curve = k.asymmetricKeyDetails?.namedCurve;
  const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
  if (k.asymmetricKeyType !== 'ec' || !namedCurve) {
    throw new FleetwaveError('E_CERT_INVALID', 'the CA key must be an EC key on P-256 or P-384');
  }
  const algorithm = { name: 'ECDSA', namedCurve, hash: namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384' };
  const der = k.export({ type: 'pkcs8', format: 'der' });
  return { key: await subtle.importKey('pkcs8', der, algorithm, false, ['sign']), algorithm };
}

/** The fleet CA of a data dir, read now (a CA made while the controller runs is used at once), or undefined. */
export async function loadCa(dataDir: string): Promise<FleetCa | undefined> {
  const files = caFiles(dataDir);
  if (!existsSync(files.cert) || !existsSync(files.key)) return undefined;
  const certPem = readFileSync(files.cert, 'utf8');
  const { key, algorithm } = await signingKeyOf(readFileSync(files.key, 'utf8'));
  return { certPem, cert: new x509.X509Certificate(certPem), signingKey: key, algorithm };
}

/**
 * A client certificate for a device, subject CN = the device id, signed by the fleet CA. With `csrPem` the device made
 * the key (its private key never leaves it) and the CSR must name the device and carry a valid signature; without it
 * the controller makes a P-256 key and returns it once. `notBefore`/`notAfter` override the validity (tests).
 */
export async function issueDeviceCertificate(
  ca: FleetCa,
  deviceId: string,
  o: { csrPem?: string; days?: number; notBefore?: number; notAfter?: number } = {},
): Promise<IssuedCertificate> {
  let publicKey: CryptoKey;
  let keyPem: string | undefined;
  if (o.csrPem) {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(o.csrPem);
    } catch (err) {
      throw new FleetwaveError('E_CERT_INVALID', `not a PEM certificate signing request: ${(err as Error).message}`);
    }
    if (!(await csr.verify())) throw new FleetwaveError('E_CERT_INVALID', 'the CSR’s signature does not verify');
    const cn = csr.subjectName.getField('CN');
    if (cn.length !== 1 || cn[0] !== deviceId) {
      throw new FleetwaveError('E_CERT_INVALID', `the CSR's subject is "${csr.subject}", not CN=${deviceId}`);
    }
    const spki = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    if (spki.asymmetricKeyType !== 'ec' && spki.asymmetricKeyType !== 'rsa') {
      throw new FleetwaveError('E_CERT_INVALID', `a ${spki.asymmetricKeyType} key is not taken: EC or RSA`);
    }
    publicKey = await csr.publicKey.export();
  } else {
    const keys = (await subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    publicKey = keys.publicKey;
    keyPem = pkcs8Pem(await subtle.exportKey('pkcs8', keys.privateKey));
  }
  const now = Date.now();
  const notBefore = o.notBefore ?? now - 60_000;
  const notAfter = o.notAfter ?? now + (o.days ?? 365) * 86_400_000;
  const serial = randomBytes(16)
    .toString('hex')
    .replace(/^[89a-f]/, '1');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: `CN=${deviceId}`,
    issuer: ca.cert.subject,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    signingKey: ca.signingKey,
    publicKey,
    signingAlgorithm: ca.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], true),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  const certPem = cert.toString('pem');
  return {
    certPem,
    ...(keyPem && { keyPem }),
    fingerprint: certificateFingerprint(certPem),
    serial,
    notBefore: Math.floor(notBefore / 1000) * 1000,
    notAfter: Math.floor(notAfter / 1000) * 1000,
  };
}

/**
 * A CRL from the fleet CA listing `revoked` (serials and when), valid for `days` (Mosquitto's `crlfile`: regenerate
 * it with `broker mosquitto-config --certs` after revoking, and before it runs out).
 */
export async function revocationList(
  ca: FleetCa,
  revoked: readonly { serial: string; revokedAt: number }[],
  days = 30,
): Promise<string> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + days * 86_400_000),
    entries: revoked.map((r) => ({ serialNumber: r.serial, revocationDate: new Date(r.revokedAt) })),
    signingKey: ca.signingKey,
    signingAlgorithm: ca.algorithm,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert)],
  });
  // OpenSSL (Mosquitto's crlfile) reads only the RFC 7468 label, X509 CRL
  return crl
    .toString('pem')
    .replaceAll('BEGIN CRL-----', 'BEGIN X509 CRL-----')
    .replaceAll('END CRL-----', 'END X509 CRL-----');
}
