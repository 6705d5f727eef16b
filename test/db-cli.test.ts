import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { havePostgres } from '@fleetwave/controller';
import mqtt from 'mqtt';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  api,
  cleanupAfterEach,
  controllerCli as cli,
  freePort,
  spawnController,
  testDatabaseFor,
  tmp,
} from './helpers.js';

const cleanups = cleanupAfterEach();
const postgres = await havePostgres();

describe('fleetwave serve --database: what it says when the database is not usable', () => {
  it('refuses a URL it does not know, and a PostgreSQL that does not answer, with what to do and the exit code', async () => {
    const dir = tmp('db-cli');
    const bad = await cli(
      'serve',
      '--data-dir',
      dir,
      '--http-port',
      '0',
      '--mqtt-port',
      '0',
      '--database',
      'mysql://db/x',
    );
    expect(bad.code).toBe(78);
    expect(bad.err).toMatch(/E_DATABASE_URL: mysql:\/\/db\/x is not a database URL .*postgres:\/\/user@host:5432\/db/);
    const port = await freePort(); // nothing listens there
    const gone = await cli(
      'serve',
      '--data-dir',
      dir,
      '--http-port',
      '0',
      '--mqtt-port',
      '0',
      '--database',
      `postgres://fw:secret@127.0.0.1:${port}/fleet`,
    );
    expect(gone.code).toBe(69);
    expect(gone.err).toMatch(/E_DATABASE_UNREACHABLE: no PostgreSQL answers at postgres:\/\/fw:\*\*\*@127\.0\.0\.1/);
    expect(gone.err).not.toContain('secret'); // the password is never printed
  });

  it.skipIf(!postgres)(
    'refuses a database that does not exist or is on a newer schema, changing nothing; db migrate brings it up to date',
    async () => {
      const dir = tmp('db-cli-pg');
      const url = await testDatabaseFor(join(dir, 'a'));
      const missing = new URL(url);
      missing.pathname = '/fw_no_such_database';
      const none = await cli('db', 'migrate', '--database', missing.toString());
      expect(none.code).toBe(78);
      expect(none.err).toMatch(/does not exist: create it/);
      const ok = await cli('db', 'migrate', '--database', url);
      expect(ok.code).toBe(0);
      expect(ok.out).toMatch(/schema up to date \(postgres\)/);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query('UPDATE fleetwave_schema SET version = 999');
        const newer = await cli('serve', '--data-dir', dir, '--http-port', '0', '--mqtt-port', '0', '--database', url);
        expect(newer.code).toBe(78);
        expect(newer.err).toMatch(
          /E_DATABASE_SCHEMA: .*schema version 999, newer than this controller's .*nothing was changed/,
        );
        expect((await c.query('SELECT version FROM fleetwave_schema')).rows[0].version).toBe(999);
      } finally {
        await c.end();
      }
    },
  );
});

describe.skipIf(!postgres)('fleetwave db copy: a running installation moved from SQLite to PostgreSQL', () => {
  it('copies everything, verified; the controller on PostgreSQL goes on where it stopped; a non-empty target is refused', async () => {
    const dir = tmp('db-copy');
    const sqliteDir = join(dir, 'sqlite');
    const mqttPort = await freePort();
    // an installation with state: a device, its telemetry, a token, audit entries, a config layer
    let ctl = await spawnController(sqliteDir, [
      '--mqtt-port',
      String(mqttPort),
      '--http-port',
      '0',
      '--database',
      `sqlite:${join(sqliteDir, 'fleet.db')}`,
    ]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const dev = await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'gw-copy', tags: { site: 'a' } });
    expect(dev.status).toBe(201);
    const layer = await api(ctl.url, ctl.adminToken, 'POST', '/api/config/layers', {
      apiVersion: 'fleetwave/v1',
      kind: 'ConfigLayer',
      name: 'site-a',
      priority: 5,
      selector: { tags: { site: 'a' } },
      config: { backlogIntervalMs: 60000 },
    });
    expect(layer.body).toEqual({ layer: 'site-a', changed: ['gw-copy'] });
    const publish = async (from: number) => {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
        clientId: 'gw-copy',
        username: 'gw-copy',
        password: dev.body.token,
        reconnectPeriod: 0,
      });
      const records = Array.from({ length: 50 }, (_, i) => ({
        kind: 'reading',
        seq: from + i,
        stream: 'copy/v',
        ts: Date.now(),
        value: from + i,
      }));
      await c.publishAsync(
        'fleetwave/devices/gw-copy/telemetry',
        JSON.stringify({ v: 1, device: 'gw-copy', seqFrom: from, seqTo: from + 49, sentAt: Date.now(), records }),
        { qos: 1 },
      );
      await c.endAsync();
    };
    await publish(1);
    const before = (await api(ctl.url, ctl.adminToken, 'GET', '/api/telemetry?after=0&limit=1000')).body.records;
    expect(before).toHaveLength(50);
    await ctl.kill('SIGTERM');

    const pgDir = join(dir, 'pg');
    const url = await testDatabaseFor(pgDir);
    const copied = await cli('db', 'copy', '--from', `sqlite:${join(sqliteDir, 'fleet.db')}`, '--to', url);
    expect(copied.err + copied.out).not.toMatch(/Error/);
    expect(copied.code).toBe(0);
    expect(copied.out).toMatch(/^telemetry\s+50 rows\s+checksum [0-9a-f]{16}\s+ok$/m);
    expect(copied.out).toMatch(/^devices\s+1 rows/m);
    expect(copied.out).toMatch(/verified\. Start the controller with --database postgres:\/\//);

    // the same controller state on PostgreSQL: the admin token (its file kept by the operator), the device and its
    // token, the cursors, the layer
    copyFileSync(join(sqliteDir, 'admin-token'), join(pgDir, 'admin-token'));
    ctl = await spawnController(pgDir, ['--mqtt-port', String(mqttPort), '--http-port', '0', '--database', url]);
    const admin = ctl.adminToken;
    const after = (await api(ctl.url, admin, 'GET', '/api/telemetry?after=0&limit=1000')).body.records;
    expect(after).toEqual(before);
    expect(
      (await api(ctl.url, admin, 'GET', '/api/config/layers')).body.layers.map((l: { name: string }) => l.name),
    ).toEqual(['site-a']);
    await publish(51); // the device's token still works; new records go on after the copied cursors
    const all = (await api(ctl.url, admin, 'GET', '/api/telemetry?after=0&limit=1000')).body.records as {
      cursor: number;
    }[];
    expect(all.map((r) => r.cursor)).toEqual(Array.from({ length: 100 }, (_, i) => before[0].cursor + i));
    await ctl.kill('SIGTERM');

    // a second copy into the same database is refused, and changes nothing
    const again = await cli('db', 'copy', '--from', `sqlite:${join(sqliteDir, 'fleet.db')}`, '--to', url);
    expect(again.code).toBe(73);
    expect(again.err).toMatch(/E_DATABASE_NOT_EMPTY: .* already holds controller state/);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    expect((await c.query('SELECT COUNT(*)::int AS n FROM telemetry')).rows[0].n).toBe(100);
    await c.end();
  });
});
