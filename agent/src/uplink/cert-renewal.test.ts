import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { completeCertificateSwap } from './cert-renewal.js';

/** A self-signed P-256 certificate and its key (openssl), as PEM strings. */
function pair(dir: string, name: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

describe('completeCertificateSwap: a renewal cut short by a crash leaves a pair that matches', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-swap-'));
  const old = pair(dir, 'old');
  const renewed = pair(dir, 'new');
  const files = (tag: string) => ({ cert: join(dir, `${tag}-device.crt`), key: join(dir, `${tag}-device.key`) });

  it('crash after both .next files were written: the old pair stays, the .next files go', () => {
    const f = files('a');
    writeFileSync(f.cert, old.cert);
    writeFileSync(f.key, old.key);
    writeFileSync(`${f.cert}.next`, renewed.cert);
    writeFileSync(`${f.key}.next`, renewed.key);
    completeCertificateSwap(f.cert, f.key);
    expect([readFileSync(f.cert, 'utf8'), readFileSync(f.key, 'utf8')]).toEqual([old.cert, old.key]);
    expect(existsSync(`${f.cert}.next`) || existsSync(`${f.key}.next`)).toBe(false);
  });

  it('crash between the two renames (new key in place): the new certificate is moved in', () => {
    const f = files('b');
    writeFileSync(f.cert, old.cert);
    writeFileSync(f.key, renewed.key);
    writeFileSync(`${f.cert}.next`, renewed.cert);
    completeCertificateSwap(f.cert, f.key);
    expect([readFileSync(f.cert, 'utf8'), readFileSync(f.key, 'utf8')]).toEqual([renewed.cert, renewed.key]);
    expect(existsSync(`${f.cert}.next`)).toBe(false);
  });

  it('a stray .next certificate for another key is dropped; nothing to do leaves all as it is', () => {
    const f = files('c');
    writeFileSync(f.cert, old.cert);
    writeFileSync(f.key, old.key);
    writeFileSync(`${f.cert}.next`, renewed.cert);
    completeCertificateSwap(f.cert, f.key);
    expect(readFileSync(f.cert, 'utf8')).toBe(old.cert);
    expect(existsSync(`${f.cert}.next`)).toBe(false);
    completeCertificateSwap(f.cert, f.key);
    expect([readFileSync(f.cert, 'utf8'), readFileSync(f.key, 'utf8')]).toEqual([old.cert, old.key]);
  });
});
