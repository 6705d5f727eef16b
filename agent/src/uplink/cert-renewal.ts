import { createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { CertificateIssued, certificateRequest, decodeMessage, deviceTopic } from '@fleetwave/shared';
import type { Logger } from 'pino';

export interface RenewalOptions {
  device: string;
  root: string;
  certFile: string;
  keyFile: string;
  /** Renew when the certificate expires within this. */
  renewBeforeMs: number;
  now: () => number;
  log: Logger;
  /** Sends the request (QoS 1) when connected; false when not. */
  publish: (topic: string, payload: string) => boolean;
  /** The new certificate and key are on disk: connect again with them. */
  onRenewed: (material: { cert: Buffer; key: Buffer }) => void;
}

/** How long an unanswered request waits before it is sent again (with a new key). */
const RETRY_MS = 60_000;

function writeDurably(file: string, data: string, mode: number): void {
  const fd = openSync(file, 'w', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Finishes a certificate swap a crash interrupted, before the files are read: the new pair is written as `.next`
 * files, then the key and then the certificate renamed over the old ones. A `.next` certificate whose key is in
 * place already completes the swap; a `.next` key not yet in place is dropped (the old pair is whole).
 */
export function completeCertificateSwap(certFile: string, keyFile: string): void {
  const nextCert = `${certFile}.next`;
  const nextKey = `${keyFile}.next`;
  if (existsSync(nextKey)) {
    rmSync(nextKey, { force: true });
    rmSync(nextCert, { force: true });
    return;
  }
  if (!existsSync(nextCert)) return;
  try {
    const matches = new X509Certificate(readFileSync(nextCert)).checkPrivateKey(
      createPrivateKey(readFileSync(keyFile)),
    );
    if (matches) renameSync(nextCert, certFile);
    else rmSync(nextCert, { force: true });
  } catch {
    rmSync(nextCert, { force: true });
  }
}

/**
 * Renews the agent's client certificate before it expires, by itself: a new P-256 key made here (it never leaves
 * the device), a CSR for it on `certificate/request`, the controller's certificate from `certificate/issued`; the
 * pair replaces the old one on disk (crash-safe, see completeCertificateSwap) and the uplink connects again with
 * it. Until then the old certificate keeps working; a refusal is logged and asked again later.
 */
export class CertificateRenewal {
  readonly issuedTopic: string;
  private pending: { key: KeyObject; since: number } | undefined;

  constructor(private readonly o: RenewalOptions) {
    this.issuedTopic = deviceTopic(o.root, o.device, 'certificate/issued');
  }

  private timer: NodeJS.Timeout | undefined;

  /** The certificate on disk: when it became valid and when it expires (ms), or undefined when unreadable. */
  validity(): { from: number; until: number } | undefined {
    try {
      const c = new X509Certificate(readFileSync(this.o.certFile));
      return { from: Date.parse(c.validFrom), until: Date.parse(c.validTo) };
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, file: this.o.certFile }, 'certificate not readable');
      return undefined;
    }
  }

  /**
   * When the certificate is due: `renewBefore` ahead of its expiry, or a third of its lifetime ahead when that is
   * shorter (so a certificate shorter-lived than `renewBefore` is not renewed again at once, forever).
   */
  dueAt(v: { from: number; until: number }): number {
    return v.until - Math.min(this.o.renewBeforeMs, (v.until - v.from) / 3);
  }

  /**
   * Sends a renewal request when the certificate is due and none is waiting, and looks again when it will be due
   * (at most an hour later). Called when the uplink's subscriptions are in place.
   */
  check(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const v = this.validity();
    const now = this.o.now();
    if (v === undefined) return;
    const due = this.dueAt(v);
    const next = Math.min(3_600_000, Math.max(1000, due > now ? due - now : RETRY_MS));
    this.timer = setTimeout(() => this.check(), next);
    this.timer.unref();
    if (now < due) return;
    if (this.pending && now - this.pending.since < RETRY_MS) return;
    const until = v.until;
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const body = JSON.stringify({ v: 1, device: this.o.device, csr: certificateRequest(this.o.device, privateKey) });
    if (!this.o.publish(deviceTopic(this.o.root, this.o.device, 'certificate/request'), body)) return;
    this.pending = { key: privateKey, since: now };
    this.o.log.info({ expires: new Date(until).toISOString() }, 'certificate due: renewal requested');
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Handles a message on `certificate/issued`; true when it was that topic. */
  onMessage(topic: string, payload: Buffer): boolean {
    if (topic !== this.issuedTopic) return false;
    try {
      const msg = decodeMessage(CertificateIssued, payload, 'certificate answer');
      if ('error' in msg) {
        this.o.log.warn(
          { code: msg.error.code, err: msg.error.message },
          'certificate renewal refused by the controller',
        );
        return true;
      }
      const pending = this.pending;
      const cert = new X509Certificate(msg.certificate);
      if (!pending || !cert.checkPrivateKey(pending.key)) {
        this.o.log.warn('a certificate arrived that is not for the key this agent asked with: ignored');
        return true;
      }
      if (cert.subject !== `CN=${this.o.device}`) {
        this.o.log.warn({ subject: cert.subject }, 'a certificate for another subject arrived: ignored');
        return true;
      }
      const keyPem = pending.key.export({ type: 'pkcs8', format: 'pem' }) as string;
      writeDurably(`${this.o.certFile}.next`, msg.certificate, 0o644);
      writeDurably(`${this.o.keyFile}.next`, keyPem, 0o600);
      renameSync(`${this.o.keyFile}.next`, this.o.keyFile);
      renameSync(`${this.o.certFile}.next`, this.o.certFile);
      this.pending = undefined;
      this.o.log.info(
        { fingerprint: msg.fingerprint, until: new Date(msg.notAfter).toISOString() },
        'certificate renewed; connecting again with it',
      );
      this.o.onRenewed({ cert: Buffer.from(msg.certificate), key: Buffer.from(keyPem) });
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'certificate answer not usable');
    }
    return true;
  }
}
