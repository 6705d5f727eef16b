import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { decodeJson, decodeMessage, parseWith } from './decode.js';
import { FleetwaveError } from './errors.js';
import { validSamples } from './samples.test-data.js';
import { messageSchemas } from './schemas/index.js';

type Path = (string | number)[];

/** Free-form by design: a job's document, an event's details (their shape depends on the job or the kind). */
const FREE_FORM = new Set<string | number | undefined>(['jobDocument', 'details']);

/** Paths of every leaf (primitive) in a JSON value, skipping free-form parts. */
function leafPaths(v: unknown, path: Path = []): Path[] {
  if (v !== null && typeof v === 'object') {
    if (FREE_FORM.has(path.at(-1))) return [];
    return Object.entries(v).flatMap(([k, c]) => leafPaths(c, [...path, Array.isArray(v) ? Number(k) : k]));
  }
  return [path];
}

function objectPaths(v: unknown, path: Path = []): Path[] {
  if (v === null || typeof v !== 'object' || FREE_FORM.has(path.at(-1))) return [];
  const here = Array.isArray(v) ? [] : [path];
  return [
    ...here,
    ...Object.entries(v).flatMap(([k, c]) => objectPaths(c, [...path, Array.isArray(v) ? Number(k) : k])),
  ];
}

function setAt(root: unknown, path: Path, value: unknown): unknown {
  const copy = structuredClone(root);
  if (path.length === 0) return value;
  let cur = copy as Record<string | number, unknown>;
  for (const p of path.slice(0, -1)) cur = cur[p] as Record<string | number, unknown>;
  cur[path.at(-1)!] = value;
  return copy;
}

function expectCoded(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FleetwaveError);
    expect((err as FleetwaveError).code).toMatch(/^E_/);
    return;
  }
  throw new Error('expected a coded rejection, but the value was accepted');
}

const names = Object.keys(messageSchemas);

/** Leaves where null is a value by design (it clears the field), per schema: null is accepted there, nothing else. */
const NULL_MEANS_CLEAR: Record<string, string[]> = { 'api-device-update': ['hardware'] };

describe('every message schema', () => {
  it('has a valid sample here', () => {
    expect(Object.keys(validSamples).sort()).toEqual([...names].sort());
  });

  describe.each(names)('%s', (name) => {
    const schema = messageSchemas[name]!;
    const sample = validSamples[name];

    it('accepts its valid sample, as frozen typed data', () => {
      const parsed = parseWith(schema, sample) as object;
      expect(Object.isFrozen(parsed)).toBe(true);
      expect(decodeMessage(schema, Buffer.from(JSON.stringify(sample)))).toEqual(parsed);
    });

    it('rejects a wrong-typed, NaN, infinite, huge or deeply nested leaf with E_SCHEMA', () => {
      const bad: unknown[] = [
        null,
        { x: 1 },
        Number.NaN,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        'x'.repeat(100_000),
      ];
      let deep: unknown = 1;
      for (let i = 0; i < 5000; i++) deep = [deep];
      bad.push(deep);
      for (const path of leafPaths(sample)) {
        for (const b of bad) {
          if (b === null && NULL_MEANS_CLEAR[name]?.includes(path.join('.'))) {
            expect(() => parseWith(schema, setAt(sample, path, b))).not.toThrow();
            continue;
          }
          // a huge string is only wrong where a string was: elsewhere it is simply the wrong type, also rejected
          expectCoded(() => parseWith(schema, setAt(sample, path, b)));
        }
      }
    });

    it('rejects an extra field in any object', () => {
      for (const path of objectPaths(sample)) {
        const obj = path.reduce<unknown>((o, p) => (o as Record<string | number, unknown>)[p], sample) as object;
        // records (maps) take any key of their key type: those are not closed objects
        const extraKey = 'zz_unexpected';
        const mutated = setAt(sample, path, { ...obj, [extraKey]: { nested: true } });
        expectCoded(() => parseWith(schema, mutated));
      }
    });

    it('rejects the sample without any of its required top-level fields', () => {
      const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { required?: string[] };
      for (const key of json.required ?? []) {
        const { [key]: _dropped, ...rest } = sample as Record<string, unknown>;
        expectCoded(() => parseWith(schema, rest));
      }
    });

    it('never crashes on random JSON or random bytes: valid or a coded error', () => {
      fc.assert(
        fc.property(fc.oneof(fc.jsonValue(), fc.anything()), (v) => {
          try {
            parseWith(schema, v);
          } catch (err) {
            return err instanceof FleetwaveError && err.code === 'E_SCHEMA';
          }
          return true;
        }),
        { numRuns: 300 },
      );
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
          try {
            decodeMessage(schema, bytes);
          } catch (err) {
            return err instanceof FleetwaveError && /^E_(PAYLOAD|SCHEMA)/.test(err.code);
          }
          return true;
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe('decodeJson', () => {
  it('rejects invalid UTF-8 with E_PAYLOAD_ENCODING', () => {
    for (const bytes of [[0xff], [0xc3, 0x28], [0x22, 0xed, 0xa0, 0x80, 0x22], [0xe2, 0x82]]) {
      expect(() => decodeJson(Uint8Array.from(bytes))).toThrow(expect.objectContaining({ code: 'E_PAYLOAD_ENCODING' }));
    }
  });

  it('rejects oversized payloads before parsing, and broken or absurdly deep JSON with a code', () => {
    expect(() => decodeJson('1'.repeat(300_000))).toThrow(expect.objectContaining({ code: 'E_PAYLOAD_TOO_LARGE' }));
    expect(() => decodeJson('{"a":')).toThrow(expect.objectContaining({ code: 'E_PAYLOAD_JSON' }));
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    expectCoded(() => decodeMessage(messageSchemas['presence']!, deep, 'x', { maxBytes: 1_000_000 }));
  });

  it('reports every issue with its path', () => {
    try {
      parseWith(messageSchemas['presence']!, { v: 1, device: 'bad id', state: 'maybe', ts: -1 });
      throw new Error('accepted');
    } catch (err) {
      expect((err as FleetwaveError).message).toMatch(/device: device id must match/);
      expect((err as FleetwaveError).message).toMatch(/state:/);
      expect((err as FleetwaveError).message).toMatch(/ts:/);
    }
  });
});
