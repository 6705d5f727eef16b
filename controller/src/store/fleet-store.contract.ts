import { describe, expect, it } from 'vitest';
import type { DatabaseFixture } from './database-fixtures.js';
import type { NewDevice } from './fleet-store.js';

const dev = (id: string): NewDevice => ({
  id,
  tags: { site: 'north' },
  hardware: 'rpi4',
  createdAt: 1,
  tokenHash: 'scrypt$x',
  mosquittoHash: '$7$x',
});

/** The contract every FleetStore passes (SQLite and PostgreSQL), and the units of work of its database. */
export function fleetStoreContract(name: string, make: () => Promise<DatabaseFixture>) {
  const using = async (fn: (f: DatabaseFixture) => Promise<void>) => {
    const f = await make();
    try {
      await fn(f);
    } finally {
      await f.close();
    }
  };

  describe(`FleetStore contract: ${name}`, () => {
    it('keeps device certificates by fingerprint, newest first, and revokes one or all of a device', () =>
      using(async ({ db }) => {
        const s = db.fleet;
        const cert = (fingerprint: string, device: string, issuedAt: number) => ({
          fingerprint,
          device,
          serial: `s-${fingerprint}`,
          notBefore: issuedAt,
          notAfter: issuedAt + 1000,
          issuedAt,
          revokedAt: null,
        });
        await s.addCertificate(cert('aa', 'gw-1', 1));
        await s.addCertificate(cert('bb', 'gw-1', 2));
        await s.addCertificate(cert('cc', 'gw-2', 3));
        await expect(s.addCertificate(cert('aa', 'gw-3', 4))).rejects.toThrow();
        expect(await s.getCertificate('aa')).toEqual(cert('aa', 'gw-1', 1));
        expect(await s.getCertificate('zz')).toBeUndefined();
        expect((await s.listCertificates('gw-1')).map((c) => c.fingerprint)).toEqual(['bb', 'aa']);
        expect(await s.revokeCertificates('gw-1', 10, 'aa')).toBe(1);
        expect(await s.revokeCertificates('gw-1', 11, 'aa')).toBe(0);
        expect(await s.revokeCertificates('gw-1', 12)).toBe(1);
        expect((await s.listCertificates('gw-1')).map((c) => c.revokedAt)).toEqual([12, 10]);
        expect((await s.getCertificate('cc'))!.revokedAt).toBeNull();
      }));

    it('registers devices once, updates and revokes them', () =>
      using(async ({ db }) => {
        const s = db.fleet;
        await s.addDevice(dev('gw-2'));
        await s.addDevice(dev('gw-1'));
        await expect(s.addDevice(dev('gw-1'))).rejects.toMatchObject({ code: 'E_DEVICE_EXISTS' });
        expect(await s.rehashSecret('device', 'gw-2', 'scrypt$x', 'sha256$d')).toBe(true);
        expect(await s.rehashSecret('device', 'gw-2', 'scrypt$x', 'sha256$z')).toBe(false); // changed meanwhile
        expect((await s.getDevice('gw-2'))!.tokenHash).toBe('sha256$d');
        expect((await s.listDevices()).map((d) => d.id)).toEqual(['gw-1', 'gw-2']);
        await s.updateDevice('gw-1', {
          presence: 'online',
          lastSeen: 5,
          agentVersion: '0.1.0',
          tags: { site: 'south' },
        });
        expect(await s.getDevice('gw-1')).toMatchObject({
          presence: 'online',
          lastSeen: 5,
          agentVersion: '0.1.0',
          tags: { site: 'south' },
        });
        await s.updateDevice('gw-1', { hardware: 'rpi5', releases: { app: '1.2.0' } });
        expect(await s.getDevice('gw-1')).toMatchObject({
          hardware: 'rpi5',
          tags: { site: 'south' },
          releases: { app: '1.2.0' },
        });
        await s.updateDevice('gw-1', { hardware: null });
        expect((await s.getDevice('gw-1'))!.hardware).toBeNull();
        expect(await s.revokeDevice('gw-1', 9)).toBe(true);
        expect(await s.revokeDevice('gw-1', 10)).toBe(false);
        expect((await s.getDevice('gw-1'))!.revokedAt).toBe(9);
        expect(await s.getDevice('nope')).toBeUndefined();
        // ids sort byte-wise on both databases (not by a locale's collation)
        await s.addDevice(dev('Gw-3'));
        await s.addDevice(dev('gw_4'));
        expect((await s.listDevices()).map((d) => d.id)).toEqual(['Gw-3', 'gw-1', 'gw-2', 'gw_4']);
      }));

    it('rolls a failed unit of work back, whole; a failed nested one only itself', () =>
      using(async ({ db }) => {
        await expect(
          db.transaction(async () => {
            await db.fleet.addDevice(dev('gw-1'));
            await db.telemetry.insert(
              [{ device: 'gw-1', seq: 1, stream: 'a', ts: 1, kind: 'reading', record: '{}' }],
              1,
            );
            throw new Error('boom');
          }),
        ).rejects.toThrow('boom');
        expect(await db.fleet.listDevices()).toEqual([]);
        expect(await db.telemetry.read({ after: 0, limit: 10 })).toEqual([]);
        await db.transaction(async () => {
          await db.fleet.addDevice(dev('gw-1'));
          await expect(
            db.transaction(async () => {
              await db.fleet.addDevice(dev('gw-2'));
              await db.fleet.addDevice(dev('gw-1'));
            }),
          ).rejects.toMatchObject({ code: 'E_DEVICE_EXISTS' });
          await db.fleet.addDevice(dev('gw-3'));
        });
        expect((await db.fleet.listDevices()).map((d) => d.id)).toEqual(['gw-1', 'gw-3']);
      }));

    it('keeps a write from outside a unit of work out of it (it waits or runs beside it, never inside)', () =>
      using(async ({ db }) => {
        let release!: () => void;
        const held = new Promise<void>((r) => {
          release = r;
        });
        const tx = db
          .transaction(async () => {
            await db.fleet.addDevice(dev('in-tx'));
            await held;
            throw new Error('rolled back');
          })
          .catch(() => {});
        // an unrelated write while the transaction is open: it must survive the rollback
        const outside = db.fleet.addDevice(dev('outside'));
        setTimeout(release, 50);
        await Promise.all([tx, outside]);
        expect((await db.fleet.listDevices()).map((d) => d.id)).toEqual(['outside']);
      }));

    it('keeps configuration layers, their history, and what each device was sent', () =>
      using(async ({ db }) => {
        const s = db.fleet;
        await s.addDevice(dev('gw-1'));
        expect(await s.getDevice('gw-1')).toMatchObject({ desiredVersion: 0, desiredConfig: null, configStatus: null });
        await s.updateDevice('gw-1', {
          desiredVersion: 2,
          desiredConfig: '{}',
          configStatus: 'rejected',
          configReason: 'bad',
        });
        expect(await s.getDevice('gw-1')).toMatchObject({
          desiredVersion: 2,
          desiredConfig: '{}',
          configStatus: 'rejected',
          configReason: 'bad',
        });
        await s.putConfigLayer({ name: 'b', layer: '{"v":1}', updatedAt: 1 });
        await s.putConfigLayer({ name: 'a', layer: '{"v":1}', updatedAt: 1 });
        await s.putConfigLayer({ name: 'b', layer: '{"v":2}', updatedAt: 2 });
        expect((await s.configLayers()).map((l) => [l.name, l.layer])).toEqual([
          ['a', '{"v":1}'],
          ['b', '{"v":2}'],
        ]);
        expect(await s.deleteConfigLayer('a')).toBe(true);
        expect(await s.deleteConfigLayer('a')).toBe(false);
        await s.addConfigHistory({ ts: 1, actor: 'ops', action: 'apply', name: 'b', before: null, after: '{"v":1}' });
        await s.addConfigHistory({
          ts: 2,
          actor: 'ops',
          action: 'apply',
          name: 'b',
          before: '{"v":1}',
          after: '{"v":2}',
        });
        await s.addConfigHistory({ ts: 3, actor: 'ops', action: 'remove', name: 'a', before: '{"v":1}', after: null });
        expect((await s.configHistory(10, 'b')).map((h) => h.after)).toEqual(['{"v":2}', '{"v":1}']);
        expect((await s.configHistory(1)).map((h) => h.name)).toEqual(['a']);
      }));

    it('keeps the audit log newest first, API tokens and enrolment tokens with their uses', () =>
      using(async ({ db }) => {
        const s = db.fleet;
        await s.addAudit({ ts: 1, actor: 'admin', action: 'device.add', target: 'gw-1', outcome: 'ok', details: '' });
        await s.addAudit({
          ts: 2,
          actor: 'viewer',
          action: 'device.revoke',
          target: 'gw-1',
          outcome: 'denied',
          details: '',
        });
        expect((await s.audit(10)).map((a) => a.outcome)).toEqual(['denied', 'ok']);
        expect(await s.audit(10)).toEqual([
          expect.objectContaining({ id: expect.any(Number), ts: 2, actor: 'viewer' }),
          expect.objectContaining({ ts: 1, details: '' }),
        ]);
        await s.addApiToken({ id: 't1', name: 'ops', role: 'operator', hash: 'h', createdAt: 1, revokedAt: null });
        expect(await s.getApiToken('t1')).toEqual({
          id: 't1',
          name: 'ops',
          role: 'operator',
          hash: 'h',
          createdAt: 1,
          revokedAt: null,
        });
        // an older hash replaced only while it is still the stored one (compare-and-set)
        expect(await s.rehashSecret('api', 't1', 'h', 'sha256$x')).toBe(true);
        expect(await s.rehashSecret('api', 't1', 'h', 'sha256$y')).toBe(false);
        expect((await s.getApiToken('t1'))!.hash).toBe('sha256$x');
        expect(await s.revokeApiToken('t1', 2)).toBe(true);
        expect(await s.revokeApiToken('t1', 3)).toBe(false);
        expect((await s.listApiTokens())[0]!.revokedAt).toBe(2);
        await s.addEnrolmentToken({
          id: 'e1',
          hash: 'h',
          usesLeft: 1,
          tags: { a: 'b' },
          createdAt: 1,
          expiresAt: null,
        });
        expect(await s.useEnrolmentToken('e1')).toBe(true);
        expect(await s.useEnrolmentToken('e1')).toBe(false);
        expect(await s.rehashSecret('enrolment', 'e1', 'h', 'sha256$e')).toBe(true);
        expect(await s.rehashSecret('device', 'gw-none', 'h', 'sha256$e')).toBe(false);
        expect(await s.getEnrolmentToken('e1')).toEqual({
          id: 'e1',
          hash: 'sha256$e',
          usesLeft: 0,
          tags: { a: 'b' },
          createdAt: 1,
          expiresAt: null,
        });
      }));
  });
}
