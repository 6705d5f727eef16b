import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jsonSchemaFiles } from './json-schema.js';

const dir = new URL('../json-schema/', import.meta.url);

describe('exported JSON Schema files', () => {
  it('are up to date with the zod schemas (regenerate: npm run gen:schemas)', () => {
    const expected = jsonSchemaFiles();
    const onDisk = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(onDisk.sort()).toEqual(Object.keys(expected).sort());
    for (const [name, text] of Object.entries(expected)) {
      expect(readFileSync(new URL(name, dir), 'utf8'), `${name} is stale: run npm run gen:schemas`).toBe(text);
    }
  });
});
