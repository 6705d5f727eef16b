// What each dependency and subsystem of the agent costs at load (issue "Agent: small on the gateway"): each module
// imported alone in a fresh `node` process (this Node, the agent package's resolution), RSS after the import and
// the import's wall time, minus a bare process's; median of 5 processes per module.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const AGENT = fileURLToPath(new URL('../agent/', import.meta.url));
const RUNS = Number(process.env.BENCH_LOAD_RUNS ?? 5);

/** [label, specifier] — dependencies first, then the agent's own subsystems (each with what it pulls in). */
const SHARED = fileURLToPath(new URL('../shared/', import.meta.url));
const MODULES = [
  ['zod', 'zod', SHARED],
  [
    'zod: the agent config schema alone (shared/dist/schemas/agent-config.js)',
    './dist/schemas/agent-config.js',
    SHARED,
  ],
  ['zod: every schema of shared (shared/dist/schemas/index.js)', './dist/schemas/index.js', SHARED],
  ['shared: topics, wire chunks (no zod)', './dist/wire/chunk.js', SHARED],
  ['pino', 'pino'],
  ['mqtt (mqtt.js)', 'mqtt'],
  ['aedes', 'aedes'],
  ['better-sqlite3 (with the addon loaded: new Database(":memory:"))', 'better-sqlite3'],
  ['yaml', 'yaml'],
  ['@fleetwave/shared (schemas, topics, wire)', '@fleetwave/shared'],
  ['agent: config (loadAgentConfig)', './dist/config.js'],
  ['agent: outbox (Outbox + SqliteOutboxStore)', './dist/outbox/sqlite-store.js'],
  ['agent: uplink (mqtt.js client)', './dist/uplink/uplink.js'],
  ['agent: sensor listener (aedes)', './dist/ingest/listener.js'],
  ['agent: health collector', './dist/health/reporter.js'],
  ['agent: updates (manager + installers)', './dist/updates/update-manager.js'],
  ['agent: filters', './dist/filters/engine.js'],
  ['agent: the whole agent (createAgent)', './dist/agent.js'],
];

function probe(spec, cwd = AGENT) {
  const code = `
    const t0 = performance.now();
    const m = await import(${JSON.stringify(spec)});
    if (${JSON.stringify(spec)} === 'better-sqlite3') new m.default(':memory:').close();
    const ms = performance.now() - t0;
    globalThis.gc?.();
    process.stdout.write(JSON.stringify({ ms, rss: process.memoryUsage.rss() / 1048576 }));`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], {
    cwd,
    encoding: 'utf8',
  });
  const json = out.slice(out.lastIndexOf('{'));
  return JSON.parse(json);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export function benchLoadCost() {
  console.log(
    `\n# agent load cost: each module imported alone in a fresh node ${process.version} process, RSS after the import and its wall time minus a bare process's (median of ${RUNS})`,
  );
  const base = Array.from({ length: RUNS }, () => probe('node:os'));
  const b = { rss: median(base.map((x) => x.rss)), ms: median(base.map((x) => x.ms)) };
  console.log(`bare node process: ${b.rss.toFixed(1)} MB RSS`);
  for (const [label, spec, cwd] of MODULES) {
    try {
      const runs = Array.from({ length: RUNS }, () => probe(spec, cwd));
      const rss = median(runs.map((x) => x.rss)) - b.rss;
      const ms = median(runs.map((x) => x.ms)) - b.ms;
      console.log(`${label.padEnd(66)} +${rss.toFixed(1).padStart(5)} MB  ${ms.toFixed(0).padStart(4)} ms`);
    } catch (err) {
      console.log(`${label.padEnd(66)} not measured: ${(err.message ?? String(err)).split('\n')[0]}`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) benchLoadCost();
