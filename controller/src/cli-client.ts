import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FleetwaveError, isErrorCode } from '@fleetwave/shared';

export interface ClientOptions {
  url: string;
  token: string | undefined;
}

/** The token: --token, then FLEETWAVE_TOKEN, then the admin token a local controller wrote into its data directory. */
export function resolveToken(flag: string | undefined, dataDir: string): string | undefined {
  if (flag) return flag;
  if (process.env.FLEETWAVE_TOKEN) return process.env.FLEETWAVE_TOKEN;
  const file = join(dataDir, 'admin-token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

const URL_FILE = 'controller-url';

/**
 * The controller's API URL: --url, then FLEETWAVE_URL, then the one a controller serving from this data directory
 * wrote at start (so a local controller on a free port needs no --url), then http://127.0.0.1:8080.
 */
export function resolveUrl(flag: string | undefined, dataDir: string): string {
  if (flag) return flag;
  if (process.env.FLEETWAVE_URL) return process.env.FLEETWAVE_URL;
  const file = join(dataDir, URL_FILE);
  return (existsSync(file) && readFileSync(file, 'utf8').trim()) || 'http://127.0.0.1:8080';
}

/** `serve` writes where its API listens into its data directory (replaced atomically), and removes it at a clean stop. */
export function writeControllerUrl(dataDir: string, host: string, port: number): () => void {
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  const file = join(dataDir, URL_FILE);
  writeFileSync(`${file}.tmp`, `http://${local}:${port}\n`);
  renameSync(`${file}.tmp`, file);
  return () => rmSync(file, { force: true });
}

export async function call(o: ClientOptions, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${o.url}${path}`, {
      method,
      headers: {
        ...(o.token && { authorization: `Bearer ${o.token}` }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
    throw new FleetwaveError(
      'E_CONTROLLER_UNREACHABLE',
      `cannot reach the controller at ${o.url} (${cause}): is it running? --url or FLEETWAVE_URL sets where`,
    );
  }
  const text = await res.text();
  let data: unknown = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    if (res.ok) throw new FleetwaveError('E_CONTROLLER_RESPONSE', `${method} ${path}: the answer is not JSON`);
  }
  if (!res.ok) {
    // the server's own code, or one that says the answer was not one of ours (the CLI exits 1 for either)
    const e = (data as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const code = isErrorCode(e?.code) ? e.code : 'E_CONTROLLER_RESPONSE';
    const message = typeof e?.message === 'string' ? e.message : text.slice(0, 300);
    const hint =
      res.status === 401 ? ' (pass --token, set FLEETWAVE_TOKEN, or run next to the controller data directory)' : '';
    throw new FleetwaveError(code, `${res.status} ${e?.code ?? ''}: ${message}${hint}`, { httpStatus: res.status });
  }
  return data;
}

/** A plain text table: columns padded, a header line. */
export function table(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const cell = (c: string, v: unknown) =>
    v === null || v === undefined
      ? '-'
      : typeof v === 'number' && /(At|^lastSeen|^ts)$/.test(c)
        ? new Date(v).toISOString()
        : typeof v === 'object'
          ? JSON.stringify(v)
          : String(v);
  const body = rows.map((r) => columns.map((c) => cell(c, r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return `${[line(columns), ...body.map(line)].join('\n')}\n`;
}

/** A command's required argument, or a usage error naming it (no request is sent without it). */
export function need(arg: string | undefined, usage: string): string {
  if (!arg) throw new FleetwaveError('E_CONFIG_INVALID', `usage: ${usage}`);
  return arg;
}

/** A file named on the command line, or a coded error that says how the command is used. */
export function readInputFile(name: string | undefined, usage: string): string {
  const file = need(name, usage);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetwaveError('E_CONFIG_READ', `cannot read ${file}: ${(err as Error).message}`);
  }
}
