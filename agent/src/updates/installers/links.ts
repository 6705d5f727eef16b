import { renameSync, rmSync, symlinkSync } from 'node:fs';

/** Points `link` at `target` atomically (a new symlink renamed over the old one); null removes the link. */
export function switchLink(link: string, target: string | null): void {
  if (target === null) {
    rmSync(link, { force: true });
    return;
  }
  const tmp = `${link}.next`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}
