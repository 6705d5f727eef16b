import { CertificateRequest, CertificateRevokeRequest, DeviceId, FleetwaveError, parseWith } from '@fleetwave/shared';
import type { FastifyInstance } from 'fastify';
import { issueDeviceCertificate, loadCa } from '../auth/certificates.js';
import type { ApiDeps, Guard } from './app.js';

/**
 * Device client certificates from the fleet CA in the controller's data dir (`fleetwave ca init`): issue (for a CSR,
 * or with a key made here), list, revoke. The CA is read at each request, so one made while the controller runs is
 * used at once.
 */
export function certificateRoutes(app: FastifyInstance, deps: ApiDeps & { dataDir: string }, guard: Guard): void {
  const store = deps.db.fleet;
  const device = async (params: unknown) => {
    const id = parseWith(DeviceId, (params as { id?: unknown }).id, 'device id');
    const d = await store.getDevice(id);
    if (!d) throw new FleetwaveError('E_DEVICE_UNKNOWN', `no device ${id}`);
    return d;
  };

  app.post(
    '/api/devices/:id/certificate',
    { preHandler: guard('operator', 'device.certificate') },
    async (req, reply) => {
      const d = await device(req.params);
      if (d.revokedAt !== null) throw new FleetwaveError('E_DEVICE_REVOKED', `device ${d.id} is revoked`);
      const body = parseWith(CertificateRequest, req.body ?? {}, 'certificate request');
      const ca = await loadCa(deps.dataDir);
      if (!ca) {
        throw new FleetwaveError(
          'E_CA_MISSING',
          `no fleet CA in ${deps.dataDir}/ca: run fleetwave ca init (or ca import --cert --key) where the controller's data dir is`,
        );
      }
      const issued = await issueDeviceCertificate(ca, d.id, {
        ...(body.csr && { csrPem: body.csr }),
        ...(body.validity ? { notAfter: deps.now() + body.validity } : { days: body.days }),
      });
      await store.addCertificate({
        fingerprint: issued.fingerprint,
        device: d.id,
        serial: issued.serial,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        issuedAt: deps.now(),
        revokedAt: null,
      });
      await deps.auth.audit(
        req.caller!.actor,
        'device.certificate',
        d.id,
        'ok',
        `${body.csr ? 'for its CSR' : 'with a key made here'}, fingerprint ${issued.fingerprint}, until ${new Date(issued.notAfter).toISOString()}`,
      );
      reply.status(201);
      return {
        certificate: issued.certPem,
        ...(issued.keyPem && { key: issued.keyPem }),
        ca: ca.certPem,
        fingerprint: issued.fingerprint,
        notAfter: issued.notAfter,
      };
    },
  );

  app.get('/api/devices/:id/certificates', { preHandler: guard('viewer', 'device.certificates') }, async (req) => {
    const d = await device(req.params);
    return { certificates: await store.listCertificates(d.id) };
  });

  app.post(
    '/api/devices/:id/certificates/revoke',
    { preHandler: guard('operator', 'device.certificate.revoke') },
    async (req) => {
      const d = await device(req.params);
      const body = parseWith(CertificateRevokeRequest, req.body ?? {}, 'certificate revocation');
      const revoked = await store.revokeCertificates(d.id, deps.now(), body.fingerprint);
      deps.kick(d.id); // a session on a revoked certificate ends now; one on a token or another certificate comes back
      await deps.auth.audit(
        req.caller!.actor,
        'device.certificate.revoke',
        d.id,
        'ok',
        `${revoked} revoked${body.fingerprint ? ` (${body.fingerprint})` : ''}`,
      );
      return { revoked, certificates: await store.listCertificates(d.id) };
    },
  );
}
