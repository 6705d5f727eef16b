import { isMap, isNode, isScalar, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { deepFreeze } from './decode.js';
import { FleetwaveError } from './errors.js';

export interface YamlIssue {
  line: number;
  column: number;
  path: string;
  message: string;
}

/**
 * Parses YAML text and validates it against a schema. Errors name the file, line, column and field of every problem:
 * `plan.yaml:12:7 waves.0.bake: duration must look like 500ms, 30s, 15m, 2h or 7d`. Throws E_CONFIG_INVALID.
 */
export function parseYamlWith<S extends z.ZodType>(schema: S, text: string, source = 'input'): Readonly<z.output<S>> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: YamlIssue[] = [];
  for (const e of doc.errors) {
    const pos = lineCounter.linePos(e.pos[0]);
    issues.push({ line: pos.line, column: pos.col, path: '(yaml)', message: e.message.split('\n')[0]! });
  }
  if (issues.length === 0) {
    const r = schema.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
    if (r.success) return deepFreeze(r.data);
    for (const i of r.error.issues) {
      // point at the deepest node that exists on the path (a missing field points at its parent)
      let node: unknown;
      for (let n = i.path.length; n >= 0 && !isNode(node); n--)
        node = doc.getIn(i.path.slice(0, n) as (string | number)[], true);
      let offset = isNode(node) && node.range ? node.range[0] : 0;
      let path = i.path.join('.');
      // an unknown field points at the field itself, not at the map holding it
      if (i.code === 'unrecognized_keys' && isMap(node)) {
        const key = node.items.find((p) => isScalar(p.key) && p.key.value === i.keys[0])?.key;
        if (isScalar(key) && key.range) {
          offset = key.range[0];
          path = [...i.path, i.keys[0]].join('.');
        }
      }
      const pos = lineCounter.linePos(offset);
      issues.push({ line: pos.line, column: pos.col, path: path || '(root)', message: i.message });
    }
  }
  const lines = issues.map((i) => `${source}:${i.line}:${i.column} ${i.path}: ${i.message}`);
  throw new FleetwaveError('E_CONFIG_INVALID', `${source} is invalid:\n  ${lines.join('\n  ')}`, { issues });
}
