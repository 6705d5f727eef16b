import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SignedReleaseManifest } from '@fleetwave/shared';
import { create } from 'tar';
import { describe, expect, it } from 'vitest';
import { checkArchive } from './archive.js';
import { CommandInstaller } from './command.js';
import { FilesInstaller } from './files.js';
import { installerContract, readIf } from './installer.contract.js';

const manifest = (version: string, install: SignedReleaseManifest['install']): SignedReleaseManifest =>
  ({
    schema: 1,
    name: 'gateway-app',
    version,
    hardware: ['rpi4'],
    artifacts: [{ name: 'app.tar', url: './app.tar', size: 1, sha256: 'a'.repeat(64) }],
    install,
    healthChecks: [],
    allowDowngrade: false,
    createdAt: '2026-01-01T00:00:00Z',
    signature: { alg: 'ed25519', keyId: '0'.repeat(16), value: `${'A'.repeat(86)}==` },
  }) as SignedReleaseManifest;

async function archive(dir: string, version: string): Promise<string> {
  const file = join(dir, `app-${version}.tar`);
  if (existsSync(file)) return file;
  const src = join(dir, `src-${version}`);
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'version'), version);
  mkdirSync(join(src, 'bin'));
  writeFileSync(join(src, 'bin', 'app'), '#!/bin/sh\n');
  symlinkSync('bin/app', join(src, 'run'));
  await create({ file, cwd: src, portable: true }, ['version', 'bin', 'run']);
  return file;
}

installerContract('files', async (dir) => {
  const appsDir = join(dir, 'apps');
  return {
    installer: new FilesInstaller({ appsDir, maxBytes: 1 << 20 }),
    release: async (version) => ({
      manifest: manifest(version, { type: 'files', target: 'gateway-app' }),
      artifacts: [await archive(dir, version)],
    }),
    active: () => readIf(join(appsDir, 'gateway-app', 'current', 'version')),
  };
});

// A command installer written the way an operator would: shell, A/B directories, a marker for the active one.
const SCRIPT = `#!/bin/sh
set -e
S="$FLEETWAVE_STATE_DIR"; mkdir -p "$S"
case "$1" in
  install) rm -rf "$S/next"; mkdir -p "$S/next"; tar -xf "$\{FLEETWAVE_ARTIFACTS%%:*}" -C "$S/next"; echo "$FLEETWAVE_VERSION" > "$S/next.version" ;;
  activate) if [ -f "$S/next.version" ] && [ "$(cat "$S/next.version")" = "$FLEETWAVE_VERSION" ]; then
      [ -d "$S/active" ] && { rm -rf "$S/previous"; mv "$S/active" "$S/previous"; }
      mv "$S/next" "$S/active"; rm "$S/next.version"; fi ;;
  commit) rm -rf "$S/previous" ;;
  rollback) rm -rf "$S/next" "$S/next.version"
      if [ -d "$S/previous" ] && [ "$(cat "$S/active/version" 2>/dev/null)" = "$FLEETWAVE_VERSION" ]; then
        rm -rf "$S/active"; mv "$S/previous" "$S/active"; fi ;;
  *) exit 64 ;;
esac
`;

installerContract('command', async (dir) => {
  const script = join(dir, 'update-module.sh');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  const stateDir = join(dir, 'state');
  return {
    installer: new CommandInstaller({ allowed: [script], stateDir }),
    release: async (version) => ({
      manifest: manifest(version, { type: 'command', command: [script] }),
      artifacts: [await archive(dir, version)],
    }),
    active: () => readIf(join(stateDir, 'active', 'version')),
  };
});

describe('files installer: unsafe archives are refused before anything is written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fw-unsafe-'));
  const gnuTar = (name: string, args: string[]) => {
    const file = join(dir, name);
    execFileSync('tar', ['-cf', file, ...args], { cwd: dir });
    return file;
  };
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'ok'), 'fine');
  symlinkSync('/etc/passwd', join(dir, 'src', 'escape'));
  symlinkSync('../../outside', join(dir, 'src', 'climb'));
  const cases: [string, string, RegExp][] = [
    [
      'path traversal',
      gnuTar('dotdot.tar', ['-P', '--transform', 's,^src/ok,../../evil,', 'src/ok']),
      /path leaves the install directory/,
    ],
    [
      'absolute path',
      gnuTar('abs.tar', ['-P', '--transform', 's,^src/ok,/tmp/evil,', 'src/ok']),
      /path leaves the install directory/,
    ],
    ['symlink out (absolute)', gnuTar('link-abs.tar', ['src/escape']), /link to "\/etc\/passwd" points out/],
    ['symlink out (relative)', gnuTar('link-rel.tar', ['src/climb']), /points out of the install directory/],
    ['device file', gnuTar('dev.tar', ['-P', '/dev/null']), /CharacterDevice entries are not installed|path leaves/],
    [
      'not an archive',
      (() => {
        const f = join(dir, 'junk.tar');
        writeFileSync(f, 'this is not tar'.repeat(100));
        return f;
      })(),
      /not a readable tar archive/,
    ],
  ];
  for (const [what, file, message] of cases) {
    it(`refuses ${what}`, async () => {
      await expect(checkArchive(file, { maxBytes: 1 << 20, maxEntries: 100 })).rejects.toMatchObject({
        code: 'E_ARCHIVE_UNSAFE',
        message: expect.stringMatching(message),
      });
    });
  }

  it('refuses an archive that unpacks to more than the limit, and the active slot stays', async () => {
    const big = join(dir, 'big');
    mkdirSync(big);
    writeFileSync(join(big, 'blob'), Buffer.alloc(200_000));
    const file = gnuTar('big.tar', ['big']);
    await expect(checkArchive(file, { maxBytes: 100_000, maxEntries: 100 })).rejects.toMatchObject({
      message: expect.stringMatching(/more than 100000 bytes/),
    });
    const appsDir = join(dir, 'apps');
    const inst = new FilesInstaller({ appsDir, maxBytes: 100_000 });
    const m = manifest('1.0.0', { type: 'files', target: 'gateway-app' });
    await expect(
      inst.install({
        manifest: m,
        artifacts: [file],
        slot: {},
        previousVersion: null,
        log: (await import('pino')).pino({ level: 'silent' }),
      }),
    ).rejects.toMatchObject({ code: 'E_ARCHIVE_UNSAFE' });
    expect(() => readlinkSync(join(appsDir, 'gateway-app', 'current'))).toThrow();
  });

  it('accepts links that stay inside', async () => {
    const ok = gnuTar('fine.tar', ['src/ok']);
    expect(await checkArchive(ok, { maxBytes: 1 << 20, maxEntries: 100 })).toEqual({ entries: 1, bytes: 4 });
    expect(readFileSync(join(dir, 'src', 'ok'), 'utf8')).toBe('fine');
  });
});
