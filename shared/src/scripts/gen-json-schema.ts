// Regenerates shared/json-schema/*.json from the zod schemas. A test fails when the committed files are stale.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jsonSchemaFiles } from '../json-schema.js';

const dir = fileURLToPath(new URL('../../json-schema/', import.meta.url));
mkdirSync(dir, { recursive: true });
const files = jsonSchemaFiles();
for (const f of readdirSync(dir)) if (f.endsWith('.json') && !(f in files)) rmSync(new URL(f, `file://${dir}`));
for (const [name, text] of Object.entries(files)) writeFileSync(`${dir}${name}`, text);
console.log(`wrote ${Object.keys(files).length} JSON Schema files to ${dir}`);
