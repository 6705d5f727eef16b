import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { sqliteFixture } from '../store/database-fixtures.js';
import { Authenticator } from './authenticator.js';
import { hashSecret, legacyScryptHash, mosquittoHash, newSecret } from './secrets.js';

const log = pino({ level: 'silent' });

describe('Authenticator: token hashes', () => {
  it('checks a device token against SHA-256, and migrates an scrypt hash on its first good use only', async () => {
    const { db, close } = await sqliteFixture();
    try {
      const auth = new Authenticator(db.fleet, Date.now, log);
      const token = newSecret();
      const legacy = legacyScryptHash(token);
      await db.fleet.addDevice({
        id: 'gw-1',
        tags: {},
        hardware: 'rpi4',
        createdAt: 1,
        tokenHash: legacy,
        mosquittoHash: mosquittoHash(token),
      });
      // a wrong token is refused and changes nothing
      expect(await auth.mqtt('gw-1', 'gw-1', newSecret())).toBeNull();
      expect((await db.fleet.getDevice('gw-1'))!.tokenHash).toBe(legacy);
      // the right one is taken, and the stored hash is now the fast one
      expect(await auth.mqtt('gw-1', 'gw-1', token)).toEqual({ kind: 'device', id: 'gw-1' });
      expect((await db.fleet.getDevice('gw-1'))!.tokenHash).toBe(hashSecret(token));
      expect(hashSecret(token)).toMatch(/^sha256\$[A-Za-z0-9_-]{43}$/);
      // after the migration: the same token still works, a wrong one (even one character off) still does not
      expect(await auth.mqtt('gw-1', 'gw-1', token)).toEqual({ kind: 'device', id: 'gw-1' });
      const off = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
      expect(await auth.mqtt('gw-1', 'gw-1', off)).toBeNull();
      // and a revoked device is refused with its right token
      await db.fleet.revokeDevice('gw-1', 2);
      expect(await auth.mqtt('gw-1', 'gw-1', token)).toBeNull();
      const refusals = (await db.fleet.audit(10)).filter((a) => a.outcome === 'denied').map((a) => a.details);
      expect(refusals).toEqual(['device revoked', 'wrong token', 'wrong token']);
    } finally {
      await close();
    }
  });

  it('migrates an API token the same way; a new one is SHA-256 from the start', async () => {
    const { db, close } = await sqliteFixture();
    try {
      const auth = new Authenticator(db.fleet, Date.now, log);
      const secret = newSecret();
      await db.fleet.addApiToken({
        id: 'aaaaaaaaaaaa',
        name: 'ops',
        role: 'operator',
        hash: legacyScryptHash(secret),
        createdAt: 1,
        revokedAt: null,
      });
      expect(await auth.apiToken(`fwt_aaaaaaaaaaaa_${newSecret()}`)).toBeNull();
      expect(await auth.apiToken(`fwt_aaaaaaaaaaaa_${secret}`)).toEqual({ actor: 'ops', role: 'operator' });
      expect((await db.fleet.getApiToken('aaaaaaaaaaaa'))!.hash).toBe(hashSecret(secret));
      expect(await auth.apiToken(`fwt_aaaaaaaaaaaa_${secret}`)).toEqual({ actor: 'ops', role: 'operator' });
      const { token } = await auth.createApiToken('ci', 'viewer');
      expect(await auth.apiToken(token)).toEqual({ actor: 'ci', role: 'viewer' });
    } finally {
      await close();
    }
  });
});
