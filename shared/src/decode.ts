import type { z } from 'zod';
import { FleetwaveError } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Deep-freezes a parsed value so code past the boundary cannot mutate it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export interface DecodeOptions {
  /** Largest accepted payload in bytes; default 256 KiB. */
  maxBytes?: number;
}

/** Decodes bytes (or a string) as strict UTF-8 JSON, with a size limit. Throws a coded FleetwaveError. */
export function decodeJson(input: Uint8Array | string, opts: DecodeOptions = {}): unknown {
  const maxBytes = opts.maxBytes ?? 256 * 1024;
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size > maxBytes) throw new FleetwaveError('E_PAYLOAD_TOO_LARGE', `payload of ${size} bytes exceeds ${maxBytes}`);
  let text: string;
  try {
    text = typeof input === 'string' ? input : utf8.decode(input);
  } catch {
    throw new FleetwaveError('E_PAYLOAD_ENCODING');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FleetwaveError('E_PAYLOAD_JSON', `payload is not valid JSON: ${(err as Error).message}`);
  }
}

/** Formats zod issues as `path: message` lines, the path in dotted form. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
}

/** Validates a value against a schema; returns the typed, frozen value or throws E_SCHEMA listing every issue. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what = 'value'): Readonly<z.output<S>> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = formatIssues(r.error);
    throw new FleetwaveError('E_SCHEMA', `${what} is invalid: ${issues.join('; ')}`, {
      issues: r.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
    });
  }
  return deepFreeze(r.data);
}

/** decodeJson then parseWith. */
export function decodeMessage<S extends z.ZodType>(
  schema: S,
  input: Uint8Array | string,
  what = 'message',
  opts: DecodeOptions = {},
): Readonly<z.output<S>> {
  return parseWith(schema, decodeJson(input, opts), what);
}
