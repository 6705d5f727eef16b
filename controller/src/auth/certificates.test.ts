import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newKeyAndCsr } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { certificateFingerprint, createCa, importCa, issueDeviceCertificate, loadCa } from './certificates.js';

const dir = () => mkdtempSync(join(tmpdir(), 'fw-ca-'));

describe('fleet CA and device certificates', () => {
  it('makes a CA once, and issues a client certificate for a CSR the device made (CN = device id)', async () => {
    const d = dir();
    const { certFile } = await createCa(d, { cn: 'Test fleet' });
    expect(statSync(join(d, 'ca', 'ca.key')).mode & 0o777).toBe(0o600);
    await expect(createCa(d)).rejects.toMatchObject({ code: 'E_CONFIG_INVALID' });
    const ca = (await loadCa(d))!;
    const caCert = new X509Certificate(readFileSync(certFile));
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toBe('CN=Test fleet');

    // the CSR is made with Node's crypto alone (shared/src/csr.ts): the X.509 library must read and verify it
    const { keyPem, csrPem } = newKeyAndCsr('gw-1');
    const issued = await issueDeviceCertificate(ca, 'gw-1', { csrPem, days: 30 });
    expect(issued.keyPem).toBeUndefined(); // the device's key never came here
    const cert = new X509Certificate(issued.certPem);
    expect(cert.subject).toBe('CN=gw-1');
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem))).toBe(true);
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    expect(issued.fingerprint).toBe(certificateFingerprint(issued.certPem));
    expect(issued.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(issued.notAfter - Date.now()).toBeGreaterThan(29 * 86_400_000);

    // without a CSR the controller makes the key and hands it back once
    const made = await issueDeviceCertificate(ca, 'gw-2');
    expect(
      new X509Certificate(made.certPem).checkPrivateKey((await import('node:crypto')).createPrivateKey(made.keyPem!)),
    ).toBe(true);
  });

  it('refuses a CSR for another device, a tampered one, and a CA that is no CA', async () => {
    const d = dir();
    await createCa(d);
    const ca = (await loadCa(d))!;
    await expect(issueDeviceCertificate(ca, 'gw-1', { csrPem: newKeyAndCsr('gw-2').csrPem })).rejects.toMatchObject({
      code: 'E_CERT_INVALID',
      message: expect.stringMatching(/not CN=gw-1/),
    });
    const { csrPem } = newKeyAndCsr('gw-1');
    const body = csrPem.split('\n').slice(1, -2).join('');
    const der = Buffer.from(body, 'base64');
    der[der.length - 5]! ^= 0xff; // a bit of the signature
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(issueDeviceCertificate(ca, 'gw-1', { csrPem: tampered })).rejects.toMatchObject({
      code: 'E_CERT_INVALID',
    });
    await expect(issueDeviceCertificate(ca, 'gw-1', { csrPem: 'hello' })).rejects.toMatchObject({
      code: 'E_CERT_INVALID',
    });
    // a device certificate offered as a CA
    const leaf = await issueDeviceCertificate(ca, 'gw-3');
    await expect(importCa(dir(), leaf.certPem, leaf.keyPem!)).rejects.toMatchObject({
      code: 'E_CERT_INVALID',
      message: expect.stringMatching(/not a CA certificate/),
    });
    // bring your own: the CA just made, taken into another data dir, signs there
    const other = dir();
    await importCa(other, readFileSync(join(d, 'ca', 'ca.pem'), 'utf8'), readFileSync(join(d, 'ca', 'ca.key'), 'utf8'));
    const again = await issueDeviceCertificate((await loadCa(other))!, 'gw-4');
    expect(new X509Certificate(again.certPem).verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  });
});
