import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const agentDist = fileURLToPath(new URL('../dist/agent.js', import.meta.url));
const configDist = fileURLToPath(new URL('../dist/config.js', import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * Starts the built agent in a child process with a module resolve hook that records every module it loads, and
 * returns those module URLs (issue "Agent: small on the gateway": load only what a configuration uses).
 */
async function modulesLoaded(yaml: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'fw-lazy-'));
  dirs.push(dir);
  const log = join(dir, 'loaded.txt');
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, r.url + '\\n');
  return r;
}`,
  );
  const configFile = join(dir, 'agent.yaml');
  writeFileSync(configFile, `${yaml}\ndataDir: ${join(dir, 'data')}\n`);
  const main = join(dir, 'main.mjs');
  writeFileSync(
    main,
    `import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
register(pathToFileURL(${JSON.stringify(hooks)}));
const { createAgent } = await import(${JSON.stringify(agentDist)});
const { loadAgentConfig } = await import(${JSON.stringify(configDist)});
const config = loadAgentConfig(${JSON.stringify(configFile)});
const silent = { level: 'silent', child: () => silent, trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} };
const agent = createAgent({ config, log: silent, uplinkClient: {}, sensorUsers: new Map() });
const { ingest } = await agent.start();
process.stdout.write(JSON.stringify({ ingest }));
await agent.stop(0);`,
  );
  const { stdout } = await run(process.execPath, [main], { timeout: 60_000 });
  expect(JSON.parse(stdout)).toHaveProperty('ingest');
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

describe('the agent loads only what its configuration uses', () => {
  it('no sensor listener (aedes) without ingest, no updates subsystem without updates', async () => {
    const loaded = await modulesLoaded(
      'device: { id: gw-lazy }\ningest: { enabled: false }\nuplink: { url: "mqtt://127.0.0.1:9" }',
    );
    expect(loaded.some((u) => u.includes('/agent/dist/outbox/outbox.js'))).toBe(true);
    expect(loaded.filter((u) => /\/aedes\/|\/ingest\/listener\.js$/.test(u))).toEqual([]);
    expect(loaded.filter((u) => /\/updates\/|\/tar\//.test(u))).toEqual([]);
  }, 90_000);

  it('both, when configured', async () => {
    const loaded = await modulesLoaded(
      'device: { id: gw-lazy }\ningest: { port: 0 }\nuplink: { url: "mqtt://127.0.0.1:9" }\nupdates: { enabled: true }',
    );
    expect(loaded.some((u) => u.includes('/ingest/listener.js'))).toBe(true);
    expect(loaded.some((u) => /\/aedes\//.test(u))).toBe(true);
    expect(loaded.some((u) => u.includes('/updates/update-manager.js'))).toBe(true);
  }, 90_000);
});
