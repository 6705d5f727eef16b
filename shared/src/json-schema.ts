import { z } from 'zod';
import { canonicalJson } from './canonical-json.js';
import { messageSchemas } from './schemas/index.js';

/** The JSON Schema documents (draft 2020-12) for backends in other languages, by file name. Pure: no file I/O. */
export function jsonSchemaFiles(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, schema] of Object.entries(messageSchemas)) {
    const doc = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
    const withId = { $id: `https://fleetwave.dev/schemas/${name}.json`, ...doc };
    out[`${name}.json`] = `${JSON.stringify(JSON.parse(canonicalJson(withId)), null, 2)}\n`;
  }
  return out;
}
