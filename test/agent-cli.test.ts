import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_CLI, signalAtReady, tmp } from './helpers.js';

const cli = (...args: string[]) => spawnSync(process.execPath, [AGENT_CLI, ...args], { encoding: 'utf8' });

describe('fleetwave-agent command line', () => {
  it('explains itself with --help and refuses an unknown command or flag', () => {
    const help = cli('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/check-config/);
    expect(help.stdout).toMatch(/filters test/);
    expect(cli('frobnicate').status).toBe(2);
    const bad = cli('--no-such-flag');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/Unknown option/);
  });

  it('check-config says valid, or lists each problem with its line and exits 78', () => {
    const dir = tmp('cli');
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'device: { id: gw-1 }\n');
    expect(cli('check-config', good).stdout).toMatch(/valid/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'device:\n  id: gw-1\nfilters:\n  - { match: "a/*", deadband: { absolute: 1 }, swingingDoor: { deviation: 1 } }\n',
    );
    const r = cli('check-config', bad);
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/bad\.yaml:4:\d+ filters\.0: a rule has deadband or swingingDoor, not both/);
    expect(cli('check-config', join(dir, 'missing.yaml')).stderr).toMatch(/E_CONFIG_READ/);
    const flag = cli('run', '--device-id', 'gw-1', '--listen', '127.0.0.1:99999', '--data-dir', join(dir, 'd'));
    expect(flag.status).toBe(78);
    expect(flag.stderr).toMatch(/ingest\.port/);
  });

  it('filters test replays a CSV and prints reduction and error per stream', () => {
    const dir = tmp('cli-filters');
    const rules = join(dir, 'rules.yaml');
    writeFileSync(rules, 'filters:\n  - { match: "s/*", swingingDoor: { deviation: 0.5 } }\n');
    const csv = join(dir, 'in.csv');
    writeFileSync(
      csv,
      `ts,stream,value\n${Array.from({ length: 100 }, (_, i) => `${i * 1000},s/a,${i * 0.1}`).join('\n')}\n`,
    );
    const r = cli('filters', 'test', '--rules', rules, '--input', csv);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/s\/a\s+s\/\*\s+100\s+2\s+0\s+50\.0x/);
    const json = JSON.parse(cli('filters', 'test', '--rules', rules, '--input', csv, '--json').stdout);
    expect(json[0]).toMatchObject({ stream: 's/a', readingsIn: 100, readingsOut: 2 });
    expect(cli('filters', 'test', '--rules', rules).status).toBe(78);
  });

  it('stops cleanly (exit 0) when signalled the instant it prints ready, as a supervisor may', async () => {
    // the handlers were once installed after "ready": a SIGTERM in between ended the process by the signal
    const once = (i: number) =>
      signalAtReady([
        AGENT_CLI,
        'run',
        '--device-id',
        `gw-r${i}`,
        '--uplink-url',
        'mqtt://127.0.0.1:9',
        '--data-dir',
        tmp(`ready-${i}`),
        '--listen',
        '127.0.0.1:0',
      ]);
    for (let round = 0; round < 4; round++) {
      const runs = await Promise.all([0, 1, 2].map((k) => once(round * 3 + k)));
      for (const r of runs) expect(r, r.err).toMatchObject({ code: 0, signal: null });
    }
  }, 120_000);

  it('status reads the outbox of a stopped agent', () => {
    const r = cli('status', '--data-dir', tmp('nothing'));
    expect(r.status).toBe(78);
    expect(r.stderr).toMatch(/no outbox/);
  });
});
