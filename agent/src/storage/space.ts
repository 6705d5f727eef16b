import { closeSync, fsyncSync, openSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** Is this error the file system or SQLite saying the disk is full? */
export function isDiskFullError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT' || e.code === 'SQLITE_FULL') return true;
  return typeof e.message === 'string' && /database or disk is full|no space left on device/i.test(e.message);
}

export interface SpaceOptions {
  dir: string;
  /** Below this much free space the disk counts as full (new readings are refused, the outbox drains). */
  minFreeBytes: number;
  /** Kept in `<dir>/reserve` while there is room, released the moment the disk fills, so deletes can commit. */
  reserveBytes: number;
  log: Logger;
  now: () => number;
  /** What the outbox holds now, for the log line. */
  outboxBytes?: () => number;
  /** Free bytes of the file system (statfs by default; tests may pass their own). */
  freeBytes?: (dir: string) => number;
  /** The state changed (report it upstream). */
  onChange?: (full: boolean) => void;
}

export interface SpaceState {
  full: boolean;
  freeBytes: number;
  reserveBytes: number;
  since?: number;
}

const statfsFree = (dir: string) => {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
};

/**
 * The data directory's space as a state, not a crash (issue "a full disk"): `full` is entered when free space falls
 * below `minFreeBytes` or any write fails with ENOSPC/SQLITE_FULL, and left by itself when space returns (free space
 * above the threshold plus the reserve, and the reserve written again). Entering releases the reserve file so the
 * outbox can still delete what the cloud acknowledged and checkpoint; it is logged once at warn with the numbers.
 */
export class DiskSpace {
  private full = false;
  private since: number | undefined;
  private lastFree = Number.POSITIVE_INFINITY;
  private lastCheck = Number.NEGATIVE_INFINITY;
  private readonly reservePath: string;
  /** Bytes of the reserve on disk: read once at construction, then kept as this class writes and removes the file. */
  private held: number;
  private readonly free: (dir: string) => number;

  constructor(private readonly o: SpaceOptions) {
    this.reservePath = join(o.dir, 'reserve');
    this.free = o.freeBytes ?? statfsFree;
    try {
      this.held = statSync(this.reservePath).size;
    } catch {
      this.held = 0;
    }
  }

  /**
   * At start: on a full disk the reserve is released first, so the outbox can open and drain; else it is written if
   * missing. Never throws.
   */
  start(): void {
    this.check(true);
    if (!this.full) this.ensureReserve();
  }

  get isFull(): boolean {
    return this.full;
  }

  state(): SpaceState {
    return {
      full: this.full,
      freeBytes: Number.isFinite(this.lastFree) ? this.lastFree : 0,
      reserveBytes: this.held,
      ...(this.since !== undefined && { since: this.since }),
    };
  }

  /** Looks at free space (at most every 200 ms unless forced) and enters or leaves the full state. */
  check(force = false): boolean {
    const now = this.o.now();
    if (!force && now - this.lastCheck < 200) return this.full;
    this.lastCheck = now;
    let free: number;
    try {
      free = this.free(this.o.dir);
    } catch {
      return this.full; // statfs unavailable: errors still tell
    }
    this.lastFree = free;
    // the reserve, while released, is not room for readings: it is counted as taken
    const usable = free - Math.max(0, this.o.reserveBytes - this.held);
    if (!this.full && usable < this.o.minFreeBytes) {
      this.enter(`free space ${usable} B (reserve counted as taken) is below ${this.o.minFreeBytes} B`);
    } else if (this.full && usable >= this.o.minFreeBytes + this.hysteresis()) this.leave();
    return this.full;
  }

  /** A write failed: if for lack of space, enter the full state (true); other errors are not ours (false). */
  noteError(err: unknown, where: string): boolean {
    if (!isDiskFullError(err)) return false;
    if (!this.full) this.enter(`${where} failed: ${(err as Error).message}`);
    return true;
  }

  /** Room needed above the threshold before readings are taken again (so the state does not flap). */
  private hysteresis(): number {
    return Math.max(64 * 1024, Math.floor(this.o.minFreeBytes / 4));
  }

  private enter(why: string): void {
    this.full = true;
    this.since = this.o.now();
    const released = this.held;
    try {
      rmSync(this.reservePath, { force: true });
      this.held = 0;
    } catch {} // the state matters more than the reserve
    let free = this.lastFree;
    try {
      free = this.free(this.o.dir);
      this.lastFree = free;
    } catch {}
    this.o.log.warn(
      {
        freeBytes: free,
        minFreeBytes: this.o.minFreeBytes,
        outboxBytes: this.o.outboxBytes?.(),
        reserveReleased: released,
        why,
      },
      'the data directory is full: refusing new readings (no PUBACK) and draining what the outbox holds; ingest resumes by itself when space returns',
    );
    this.o.onChange?.(true);
  }

  private leave(): void {
    if (!this.ensureReserve()) return;
    this.o.log.info(
      { freeBytes: this.lastFree, fullForMs: this.since === undefined ? 0 : this.o.now() - this.since },
      'the data directory has room again: accepting readings',
    );
    this.full = false;
    this.since = undefined;
    this.o.onChange?.(false);
  }

  /** Writes the reserve file (zeros, fsync'd: the blocks are really taken). False when that fails for lack of space. */
  private ensureReserve(): boolean {
    if (this.o.reserveBytes === 0 || this.held >= this.o.reserveBytes) {
      return true;
    }
    let fd: number | undefined;
    try {
      fd = openSync(this.reservePath, 'w', 0o600);
      const block = Buffer.alloc(64 * 1024);
      for (let left = this.o.reserveBytes; left > 0; left -= block.length) {
        writeSync(fd, block, 0, Math.min(block.length, left));
      }
      fsyncSync(fd);
      this.held = this.o.reserveBytes;
      return true;
    } catch (err) {
      rmSync(this.reservePath, { force: true });
      this.held = 0;
      if (!isDiskFullError(err)) this.o.log.warn({ err: (err as Error).message }, 'cannot write the space reserve');
      return false;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}
