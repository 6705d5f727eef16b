import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const FATAL = fileURLToPath(new URL('../dist/fatal.js', import.meta.url));

/** A child process whose timer throws (or whose promise rejects) with nothing to catch it. */
function crash(how: 'throw' | 'reject') {
  const script = `
    import { exitOnUncaught } from ${JSON.stringify(FATAL)};
    exitOnUncaught({ fatal: (o, m) => console.log(JSON.stringify({ level: 60, ...o, msg: m })) }, 'demo');
    setTimeout(() => { ${how === 'throw' ? "throw new Error('boom in a timer')" : "Promise.reject(new Error('boom in a promise'))"}; }, 5);
    setTimeout(() => {}, 10_000);
  `;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
}

describe('an error nothing handled', () => {
  it('ends the process with exit status 70 and one line saying what happened and where', () => {
    for (const how of ['throw', 'reject'] as const) {
      const r = crash(how);
      expect(r.status, r.stderr).toBe(70);
      const line = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
      expect(line).toMatchObject({
        level: 60,
        origin: how === 'throw' ? 'uncaughtException' : 'unhandledRejection',
        err: { message: `boom in a ${how === 'throw' ? 'timer' : 'promise'}` },
      });
      expect(line.msg).toMatch(/demo: an error nothing handled ends the process/);
    }
  });
});
