/**
 * The entry point of the single executable (agent/scripts/build-exe.mjs). It writes the embedded better-sqlite3
 * addon out once to a content-addressed file — in the temp directory, or beside the executable when the temp
 * directory is mounted noexec — loads it with process.dlopen, hands it to better-sqlite3, then runs the CLI.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setSqliteBinding } from './native.js';

function loadEmbeddedAddon(): void {
  // node:sea exists in Node >= 20.12; required lazily so this file also loads under plain node
  const sea = require('node:sea') as typeof import('node:sea');
  if (!sea.isSea()) {
    // the bundle run by a Node of the host (dist-bundle/): the addon for this Node's ABI beside the bundle, or the
    // one FLEETWAVE_SQLITE_ADDON names (the benchmark's reference); without either, better-sqlite3 looks for its own
    const beside = join(__dirname, `better_sqlite3-abi${process.versions.modules}-linux-${process.arch}.node`);
    const path = process.env.FLEETWAVE_SQLITE_ADDON ?? (existsSync(beside) ? beside : undefined);
    if (path) {
      const m = { exports: {} as object };
      process.dlopen(m, path, constants.dlopen.RTLD_NOW);
      setSqliteBinding(m.exports);
    } else if (existsSync(join(__dirname, 'fleetwave-agent.cjs'))) {
      process.stderr.write(
        `fleetwave-agent: this bundle has no SQLite addon for Node ${process.version} (ABI ${process.versions.modules}) on linux-${process.arch}: run it with Node 20 or 22, or use the single executable\n`,
      );
      process.exit(70);
    }
    return;
  }
  const bytes = Buffer.from(sea.getRawAsset('better_sqlite3.node') as ArrayBuffer);
  const id = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const name = `fleetwave-better-sqlite3-${id}.node`;
  const problems: string[] = [];
  for (const dir of [process.env.FLEETWAVE_ADDON_DIR, tmpdir(), dirname(process.execPath)]) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      if (!existsSync(file) || statSync(file).size !== bytes.length) {
        const part = `${file}.${process.pid}.tmp`;
        const fd = openSync(part, 'w', 0o755);
        try {
          writeSync(fd, bytes);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(part, file);
      }
      const m = { exports: {} as object };
      process.dlopen(m, file, constants.dlopen.RTLD_NOW);
      setSqliteBinding(m.exports);
      return;
    } catch (err) {
      problems.push(`${dir}: ${(err as Error).message}`);
    }
  }
  process.stderr.write(`fleetwave-agent: cannot load the embedded SQLite addon (${problems.join('; ')})\n`);
  process.exit(70);
}

loadEmbeddedAddon();
void import('./cli.js');
