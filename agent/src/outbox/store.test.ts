import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryOutboxStore } from './memory-store.js';
import { SqliteOutboxStore } from './sqlite-store.js';
import { outboxStoreContract } from './store.contract.js';

outboxStoreContract('memory', () => ({ store: new MemoryOutboxStore() }));
outboxStoreContract('sqlite file', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fw-store-')), 'outbox.db');
  return { store: new SqliteOutboxStore(path), reopen: () => new SqliteOutboxStore(path) };
});
