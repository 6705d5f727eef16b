import { describe, expect, it } from 'vitest';
import type { FleetStore, NewDevice } from './fleet-store.js';

const dev = (id: string): NewDevice => ({
  id,
  tags: { site: 'north' },
  hardware: 'rpi4',
  createdAt: 1,
  tokenHash: 'scrypt$x',
  mosquittoHash: '$7$x',
});
const tel = (device: string, seq: number, stream = 'a/b') => ({
  device,
  seq,
  stream,
  ts: seq,
  kind: 'reading',
  record: `{"seq":${seq}}`,
});

/** The contract every FleetStore passes (memory and SQLite). */
export function fleetStoreContract(name: string, make: () => FleetStore) {
  describe(`FleetStore contract: ${name}`, () => {
    it('registers devices once, updates and revokes them', () => {
      const s = make();
      s.addDevice(dev('gw-2'));
      s.addDevice(dev('gw-1'));
      expect(() => s.addDevice(dev('gw-1'))).toThrow(expect.objectContaining({ code: 'E_DEVICE_EXISTS' }));
      expect(s.listDevices().map((d) => d.id)).toEqual(['gw-1', 'gw-2']);
      s.updateDevice('gw-1', { presence: 'online', lastSeen: 5, agentVersion: '0.1.0', tags: { site: 'south' } });
      expect(s.getDevice('gw-1')).toMatchObject({
        presence: 'online',
        lastSeen: 5,
        agentVersion: '0.1.0',
        tags: { site: 'south' },
      });
      s.updateDevice('gw-1', { hardware: 'rpi5' });
      expect(s.getDevice('gw-1')).toMatchObject({ hardware: 'rpi5', tags: { site: 'south' } });
      s.updateDevice('gw-1', { hardware: null });
      expect(s.getDevice('gw-1')!.hardware).toBeNull();
      expect(s.revokeDevice('gw-1', 9)).toBe(true);
      expect(s.revokeDevice('gw-1', 10)).toBe(false);
      expect(s.getDevice('gw-1')!.revokedAt).toBe(9);
      expect(s.getDevice('nope')).toBeUndefined();
      s.close();
    });

    it('stores telemetry once per (device, sequence), with increasing cursors, and finds gaps', () => {
      const s = make();
      const first = s.insertTelemetry([tel('a', 1), tel('a', 2), tel('b', 1)], 100);
      expect(first.map((r) => r.cursor)).toEqual([...first.map((r) => r.cursor)].sort((x, y) => x - y));
      expect(s.insertTelemetry([tel('a', 2), tel('a', 5)], 200).map((r) => r.seq)).toEqual([5]);
      expect(s.telemetry({ after: 0, limit: 10 }).map((r) => `${r.device}${r.seq}`)).toEqual(['a1', 'a2', 'b1', 'a5']);
      const c = first[1]!.cursor;
      expect(s.telemetry({ after: c, limit: 10, device: 'a' }).map((r) => r.seq)).toEqual([5]);
      expect(s.telemetry({ after: 0, limit: 1 })).toHaveLength(1);
      // the newest records, still in cursor order
      expect(s.telemetry({ after: 0, limit: 2, pick: 'newest' }).map((r) => `${r.device}${r.seq}`)).toEqual([
        'b1',
        'a5',
      ]);
      expect(s.telemetry({ after: 0, limit: 2, device: 'a', pick: 'newest' }).map((r) => r.seq)).toEqual([2, 5]);
      expect(s.missingRanges('a')).toEqual([[3, 4]]);
      expect(s.missingRanges('b')).toEqual([]);
      expect(s.pruneTelemetry(150)).toBe(3);
      expect(s.telemetry({ after: 0, limit: 10 }).map((r) => r.seq)).toEqual([5]);
      s.close();
    });

    it('rolls a failed transaction back', () => {
      const s = make();
      expect(() =>
        s.transaction(() => {
          s.addDevice(dev('gw-1'));
          s.insertTelemetry([tel('gw-1', 1)], 1);
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(s.listDevices()).toEqual([]);
      expect(s.telemetry({ after: 0, limit: 10 })).toEqual([]);
      s.close();
    });

    it('keeps configuration layers, their history, and what each device was sent', () => {
      const s = make();
      s.addDevice(dev('gw-1'));
      expect(s.getDevice('gw-1')).toMatchObject({ desiredVersion: 0, desiredConfig: null, configStatus: null });
      s.updateDevice('gw-1', { desiredVersion: 2, desiredConfig: '{}', configStatus: 'rejected', configReason: 'bad' });
      expect(s.getDevice('gw-1')).toMatchObject({
        desiredVersion: 2,
        desiredConfig: '{}',
        configStatus: 'rejected',
        configReason: 'bad',
      });
      s.putConfigLayer({ name: 'b', layer: '{"v":1}', updatedAt: 1 });
      s.putConfigLayer({ name: 'a', layer: '{"v":1}', updatedAt: 1 });
      s.putConfigLayer({ name: 'b', layer: '{"v":2}', updatedAt: 2 });
      expect(s.configLayers().map((l) => [l.name, l.layer])).toEqual([
        ['a', '{"v":1}'],
        ['b', '{"v":2}'],
      ]);
      expect(s.deleteConfigLayer('a')).toBe(true);
      expect(s.deleteConfigLayer('a')).toBe(false);
      s.addConfigHistory({ ts: 1, actor: 'ops', action: 'apply', name: 'b', before: null, after: '{"v":1}' });
      s.addConfigHistory({ ts: 2, actor: 'ops', action: 'apply', name: 'b', before: '{"v":1}', after: '{"v":2}' });
      s.addConfigHistory({ ts: 3, actor: 'ops', action: 'remove', name: 'a', before: '{"v":1}', after: null });
      expect(s.configHistory(10, 'b').map((h) => h.after)).toEqual(['{"v":2}', '{"v":1}']);
      expect(s.configHistory(1).map((h) => h.name)).toEqual(['a']);
      s.close();
    });

    it('keeps the audit log newest first, API tokens and enrolment tokens with their uses', () => {
      const s = make();
      s.addAudit({ ts: 1, actor: 'admin', action: 'device.add', target: 'gw-1', outcome: 'ok', details: '' });
      s.addAudit({ ts: 2, actor: 'viewer', action: 'device.revoke', target: 'gw-1', outcome: 'denied', details: '' });
      expect(s.audit(10).map((a) => a.outcome)).toEqual(['denied', 'ok']);
      s.addApiToken({ id: 't1', name: 'ops', role: 'operator', hash: 'h', createdAt: 1, revokedAt: null });
      expect(s.getApiToken('t1')!.role).toBe('operator');
      expect(s.revokeApiToken('t1', 2)).toBe(true);
      expect(s.listApiTokens()[0]!.revokedAt).toBe(2);
      s.addEnrolmentToken({ id: 'e1', hash: 'h', usesLeft: 1, tags: { a: 'b' }, createdAt: 1, expiresAt: null });
      expect(s.useEnrolmentToken('e1')).toBe(true);
      expect(s.useEnrolmentToken('e1')).toBe(false);
      expect(s.getEnrolmentToken('e1')).toMatchObject({ usesLeft: 0, tags: { a: 'b' } });
      s.close();
    });
  });
}
