import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { onEveryDatabase } from './database-fixtures.js';
import { fleetStoreContract } from './fleet-store.contract.js';
import { migrations } from './migrations.js';
import { migrate, SqliteDatabase } from './sqlite-database.js';

const file = () => join(mkdtempSync(join(tmpdir(), 'fw-fleet-')), 'fleet.db');

onEveryDatabase(fleetStoreContract);

const schemaOf = (db: Database.Database) =>
  db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all();

describe('SQLite migrations', () => {
  it('bring an empty database and every earlier version to the same schema', () => {
    const fresh = new Database(file());
    migrate(fresh);
    for (let v = 0; v <= migrations.length; v++) {
      const db = new Database(file());
      migrate(db, v);
      db.prepare('SELECT 1').get();
      expect(migrate(db)).toBe(migrations.length);
      expect(schemaOf(db)).toEqual(schemaOf(fresh));
    }
  });

  it('keep the data of an earlier version', async () => {
    const path = file();
    const db = new Database(path);
    migrate(db, 1);
    db.prepare("INSERT INTO devices (id, created_at, token_hash) VALUES ('gw-old', 1, 'h')").run();
    db.close();
    const store = new SqliteDatabase(path);
    expect(await store.fleet.getDevice('gw-old')).toMatchObject({
      id: 'gw-old',
      mosquittoHash: '',
      presence: 'unknown',
    });
    await store.close();
  });

  it('refuse a database from a newer controller, changing nothing', () => {
    const path = file();
    const db = new Database(path);
    db.pragma(`user_version = ${migrations.length + 1}`);
    expect(() => migrate(db)).toThrow(expect.objectContaining({ code: 'E_DATABASE_SCHEMA' }));
    db.close();
    expect(() => new SqliteDatabase(path)).toThrow(/newer than this controller's .*run the newer controller/);
    const again = new Database(path);
    expect(again.pragma('user_version', { simple: true })).toBe(migrations.length + 1);
    expect(schemaOf(again)).toEqual([]);
  });
});
