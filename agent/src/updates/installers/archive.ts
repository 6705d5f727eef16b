import { isAbsolute, posix } from 'node:path';
import { FleetwaveError } from '@fleetwave/shared';
import { list } from 'tar';

export interface ArchiveLimits {
  maxBytes: number;
  maxEntries: number;
}

const SAFE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink']);

function unsafe(path: string, why: string): never {
  throw new FleetwaveError('E_ARCHIVE_UNSAFE', `archive entry "${path}": ${why}`, { entry: path });
}

/** Resolves `target` relative to the directory of `entry` inside the archive root; null when it leaves the root. */
function inside(entryPath: string, target: string): boolean {
  if (isAbsolute(target) || target.startsWith('/')) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(entryPath), target));
  return !(resolved === '..' || resolved.startsWith('../') || resolved.startsWith('/'));
}

/**
 * Reads a tar (or tar.gz) archive's index and refuses it before anything is written when any entry is unsafe:
 * an absolute path or `..`, a symbolic or hard link pointing out of the archive, a device file or FIFO, or a total
 * size or entry count over the limits.
 */
export async function checkArchive(file: string, limits: ArchiveLimits): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  let problem: FleetwaveError | undefined;
  await list({
    file,
    strict: true,
    onReadEntry: (e) => {
      if (problem) return;
      try {
        entries++;
        const p = e.path;
        if (isAbsolute(p) || p.split('/').includes('..')) unsafe(p, 'path leaves the install directory');
        if (!SAFE_TYPES.has(e.type) && e.type !== 'Link') unsafe(p, `${e.type} entries are not installed`);
        if ((e.type === 'SymbolicLink' || e.type === 'Link') && !inside(e.type === 'Link' ? '' : p, e.linkpath ?? '')) {
          unsafe(p, `link to "${e.linkpath}" points out of the install directory`);
        }
        bytes += e.size ?? 0;
        if (bytes > limits.maxBytes) unsafe(p, `archive unpacks to more than ${limits.maxBytes} bytes`);
        if (entries > limits.maxEntries) unsafe(p, `archive has more than ${limits.maxEntries} entries`);
      } catch (err) {
        problem = err as FleetwaveError;
      }
    },
  }).catch((err: Error) => {
    throw problem ?? new FleetwaveError('E_ARCHIVE_UNSAFE', `not a readable tar archive: ${err.message}`);
  });
  if (problem) throw problem;
  return { entries, bytes };
}
