import {
  type CertificateIssued,
  CertificateRenewalRequest,
  decodeMessage,
  deviceTopic,
  FleetwaveError,
} from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { FleetStore } from '../store/fleet-store.js';
import type { AuditFn } from './authenticator.js';
import { issueDeviceCertificate, loadCa } from './certificates.js';

export interface RenewalDeps {
  dataDir: string;
  fleet: FleetStore;
  root: string;
  now: () => number;
  log: Logger;
  audit: AuditFn;
  publish: (topic: string, payload: string) => Promise<void>;
}

/**
 * A device's certificate renewal (`certificate/request`, on its own topic: the broker's ACL made sure of the device):
 * a device that holds a valid certificate of this registry gets a new one for the CSR it sent, as long-lived as the
 * one it renews, on `certificate/issued`; anything else gets the reason there. The old certificate stays valid until
 * it expires (revoke it with device revoke-cert once the new one is in use, if wanted).
 */
export async function renewCertificate(d: RenewalDeps, device: string, payload: Buffer): Promise<void> {
  const answer = (body: CertificateIssued) =>
    d
      .publish(deviceTopic(d.root, device, 'certificate/issued'), JSON.stringify(body))
      .catch((err) => d.log.warn({ device, err: (err as Error).message }, 'certificate answer not sent'));
  try {
    const req = decodeMessage(CertificateRenewalRequest, payload, 'certificate request');
    if (req.device !== device) {
      throw new FleetwaveError('E_FORBIDDEN', `a request of ${req.device} arrived on the topic of ${device}`);
    }
    const now = d.now();
    const held = (await d.fleet.listCertificates(device)).find((c) => c.revokedAt === null && c.notAfter > now);
    const dev = await d.fleet.getDevice(device);
    if (!dev || dev.revokedAt !== null || !held) {
      throw new FleetwaveError(
        'E_FORBIDDEN',
        `${device} holds no valid certificate of this registry to renew: issue one with fleetwave device certify`,
      );
    }
    const ca = await loadCa(d.dataDir);
    if (!ca) throw new FleetwaveError('E_CA_MISSING', `no fleet CA in ${d.dataDir}/ca`);
    const lifetime = Math.max(held.notAfter - held.notBefore, 86_400_000);
    const issued = await issueDeviceCertificate(ca, device, { csrPem: req.csr, notAfter: now + lifetime });
    await d.fleet.addCertificate({
      fingerprint: issued.fingerprint,
      device,
      serial: issued.serial,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      issuedAt: now,
      revokedAt: null,
    });
    await d.audit(
      `device:${device}`,
      'device.certificate.renew',
      device,
      'ok',
      `fingerprint ${issued.fingerprint}, until ${new Date(issued.notAfter).toISOString()} (renews ${held.fingerprint})`,
    );
    await answer({
      v: 1,
      device,
      certificate: issued.certPem,
      fingerprint: issued.fingerprint,
      notAfter: issued.notAfter,
    });
  } catch (err) {
    const e = err instanceof FleetwaveError ? err : new FleetwaveError('E_CERT_INVALID', (err as Error).message);
    d.log.warn({ device, code: e.code, err: e.message }, 'certificate renewal refused');
    await d.audit(`device:${device}`, 'device.certificate.renew', device, 'denied', `${e.code}: ${e.message}`);
    await answer({ v: 1, device, error: { code: e.code, message: e.message.slice(0, 1000) } });
  }
}
