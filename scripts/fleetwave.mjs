#!/usr/bin/env node
// The README's commands: install everything from nothing, then run the demo, the tests or the benchmarks.
// Needs only Node.js (>= 20.19) and npm. pnpm is fetched with npx; better-sqlite3 is built from source against the
// headers of the running Node (no download from nodejs.org), see nodeHeadersDir().
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PNPM = 'pnpm@9.15.9';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [task = 'help', ...rest] = process.argv.slice(2);

function nodeHeadersDir() {
  const fromConfig = process.env.npm_config_nodedir;
  if (fromConfig && existsSync(join(fromConfig, 'include', 'node', 'node.h'))) return fromConfig;
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node.h'))) return prefix;
  return undefined;
}

function run(cmd, args, extraEnv = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...extraEnv } });
  if (r.error) {
    console.error(`fleetwave: could not run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** The end-to-end tests run a second time on PostgreSQL by `test` (ingest across kill -9, rollouts, config, dashboard). */
const POSTGRES_E2E = [
  'test/controller-e2e.test.ts',
  'test/rollout-e2e.test.ts',
  'test/config-e2e.test.ts',
  'test/dashboard.test.ts',
];

function pnpm(args, extraEnv) {
  run('npx', ['--yes', PNPM, ...args], extraEnv);
}

function install() {
  const nodedir = nodeHeadersDir();
  const env = { npm_config_nodedir: nodedir ?? '' };
  if (!nodedir) {
    console.warn(
      'fleetwave: no Node.js headers found beside this node binary; better-sqlite3 will try to fetch them.\n' +
        '  Set npm_config_nodedir to a directory holding include/node/node.h to build offline.',
    );
    delete env.npm_config_nodedir;
  }
  pnpm(['install', '--frozen-lockfile', '--reporter=append-only'], env);
  pnpm(['exec', 'tsc', '-b']);
}

function have(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Builds the agent's single executables (agent/scripts/build-exe.mjs) for the architectures whose tools are here;
 * says plainly what is missing. The tests of the executables skip without them (fail under
 * FLEETWAVE_REQUIRE_SERVICES=1, as in CI, which installs the tools first: see .ci/run).
 */
function buildAgent(required) {
  const arches = [];
  if (have('strip')) arches.push('x64');
  else console.warn('fleetwave: strip not found (apt install binutils): not building the x64 agent executable');
  if (have('aarch64-linux-gnu-g++') && have('aarch64-linux-gnu-strip')) arches.push('arm64');
  else {
    console.warn(
      'fleetwave: aarch64-linux-gnu-g++ not found: not building the arm64 agent executable\n' +
        '  (apt install g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)',
    );
  }
  if (arches.length === 0 && !required) return;
  run(process.execPath, [join(root, 'agent', 'scripts', 'build-exe.mjs'), ...arches]);
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(`fleetwave: Node.js >= 20.19 is required, this is ${process.version}.`);
  process.exit(1);
}

switch (task) {
  case 'install':
    install();
    break;
  case 'build-agent':
    install();
    buildAgent(true);
    break;
  case 'test':
    install();
    buildAgent(false);
    pnpm(['exec', 'biome', 'ci', '.']);
    pnpm(['exec', 'vitest', 'run', ...rest]);
    // the whole suite ran with the controllers on SQLite; the end-to-end tests that matter most for the controller's
    // state run again with them on PostgreSQL (issue "its state on PostgreSQL"; the contract suites ran on both above)
    if (rest.length === 0) {
      console.log('\nthe controller end-to-end tests again, on PostgreSQL (FLEETWAVE_TEST_DATABASE=postgres):');
      pnpm(['exec', 'vitest', 'run', ...POSTGRES_E2E], { FLEETWAVE_TEST_DATABASE: 'postgres' });
    }
    break;
  case 'demo':
    install();
    run(process.execPath, [join(root, 'demo', 'dist', 'cli.js'), ...rest]);
    break;
  case 'bench':
    install();
    run(process.execPath, [join(root, 'bench', 'run.mjs'), ...rest]);
    break;
  default:
    console.log(`usage: node scripts/fleetwave.mjs <install|test|demo|bench> [args]
  install  install dependencies (pnpm via npx, better-sqlite3 built from source) and build
  build-agent  install, then build the agent as one executable per architecture into dist-exe/
  test     install, lint (biome), type-check, then run every test (vitest)
  demo     install and run the demo
  bench    install and run the benchmarks`);
}
