import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, statfsSync, statSync, truncateSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FleetwaveError } from '@fleetwave/shared';

export interface DownloadOptions {
  url: string;
  dest: string;
  size: number;
  headers?: Record<string, string>;
  retries: number;
  backoffMs: number;
  onProgress?: (bytes: number) => void;
  sleep?: (ms: number) => Promise<void>;
  signal?: AbortSignal;
}

const sizeOf = (p: string) => {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
};

/** Throws E_DISK_FULL unless the file system of `dir` has `bytes` free (plus 1 MiB of head-room). */
export function checkFreeSpace(dir: string, bytes: number): void {
  const s = statfsSync(dir);
  const free = Number(s.bavail) * Number(s.bsize);
  if (free < bytes + 1024 * 1024) {
    throw new FleetwaveError('E_DISK_FULL', `${bytes} bytes needed in ${dir}, ${free} free`, { needed: bytes, free });
  }
}

/**
 * Downloads to `dest`, resuming from what is already there with an HTTP Range request; a server that ignores the
 * range (200) restarts the file. Retries with exponential back-off; after the last retry, E_DOWNLOAD_GAVE_UP.
 * Streams: memory stays flat whatever the artifact size.
 */
export async function download(o: DownloadOptions): Promise<void> {
  const sleep = o.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  checkFreeSpace(dirname(o.dest), o.size - sizeOf(o.dest));
  let lastError = '';
  for (let attempt = 0; attempt <= o.retries; attempt++) {
    if (attempt > 0) await sleep(Math.min(60_000, o.backoffMs * 2 ** (attempt - 1)));
    o.signal?.throwIfAborted();
    let have = sizeOf(o.dest);
    if (have > o.size) {
      truncateSync(o.dest, 0);
      have = 0;
    }
    if (have === o.size) return;
    try {
      const res = await fetch(o.url, {
        headers: { ...o.headers, ...(have > 0 && { range: `bytes=${have}-` }) },
        signal: o.signal ?? null,
      });
      if (res.status === 416) {
        truncateSync(o.dest, 0);
        throw new Error('HTTP 416: range not satisfiable, starting over');
      }
      if (res.status !== 200 && res.status !== 206) {
        throw new Error(`HTTP ${res.status} from ${o.url}`);
      }
      if (!res.body) throw new Error('no body');
      const append = res.status === 206 && have > 0;
      if (!append) have = 0;
      let bytes = have;
      await pipeline(
        Readable.fromWeb(res.body as never),
        async function* (src) {
          for await (const chunk of src as AsyncIterable<Buffer>) {
            bytes += chunk.length;
            if (bytes > o.size) throw new FleetwaveError('E_ARTIFACT_SIZE', `${o.url} is larger than ${o.size} bytes`);
            o.onProgress?.(bytes);
            yield chunk;
          }
        },
        createWriteStream(o.dest, { flags: append ? 'a' : 'w' }),
      );
      if (sizeOf(o.dest) === o.size) return;
      lastError = `connection ended at ${sizeOf(o.dest)} of ${o.size} bytes`;
    } catch (err) {
      if (err instanceof FleetwaveError && !err.transient) throw err;
      if (o.signal?.aborted) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        // the disk filled while downloading: what was written stays for a later resume; this attempt fails, clearly
        throw new FleetwaveError(
          'E_DISK_FULL',
          `the disk filled while downloading ${o.url}: ${(err as Error).message}`,
        );
      }
      lastError = (err as Error).message;
    }
  }
  throw new FleetwaveError(
    'E_DOWNLOAD_GAVE_UP',
    `download of ${o.url} failed after ${o.retries + 1} attempts: ${lastError}`,
  );
}

/** Size and SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
