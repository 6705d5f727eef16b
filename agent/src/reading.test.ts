import { SensorPayload } from '@fleetwave/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSensorPayload } from './reading.js';

/** Objects near the schema's edges: right and wrong types, bounds, extra keys. */
const field = {
  value: fc.oneof(fc.double(), fc.integer(), fc.string({ maxLength: 3 }), fc.constant(null), fc.boolean()),
  ts: fc.oneof(
    fc.integer({ min: -5, max: 5 }),
    fc.constantFrom(8.64e15, 8.64e15 + 1, 1.5, 1_700_000_000_000),
    fc.string({ maxLength: 2 }),
  ),
  quality: fc.oneof(fc.constantFrom('good', 'uncertain', 'bad', 'Good', ''), fc.integer()),
  unit: fc.oneof(fc.string({ maxLength: 40 }), fc.integer()),
  extra: fc.anything(),
};
const payload = fc.record(field, { requiredKeys: [] });

describe('the hand-checked reading object', () => {
  it('accepts exactly what shared SensorPayload accepts, with the same fields', () => {
    fc.assert(
      fc.property(payload, (o) => {
        const z = SensorPayload.safeParse(o);
        let mine: ReturnType<typeof checkSensorPayload> | undefined;
        let code: string | undefined;
        try {
          mine = checkSensorPayload(o as Record<string, unknown>, 42);
        } catch (err) {
          code = (err as { code?: string }).code;
        }
        expect(code === undefined, JSON.stringify(o)).toBe(z.success);
        if (z.success) {
          expect(mine).toEqual({
            value: z.data.value,
            ts: z.data.ts ?? 42,
            ...(z.data.quality && { quality: z.data.quality }),
            ...(z.data.unit && { unit: z.data.unit }),
          });
        } else expect(code).toBe('E_SCHEMA');
      }),
      { numRuns: 3000 },
    );
  });

  it('names every problem and its field', () => {
    expect(() => checkSensorPayload({ value: '1', ts: -1, colour: 'red' }, 0)).toThrow(
      /reading is invalid: value: expected a finite number; ts: .*; \(root\): unrecognized key: "colour"/,
    );
  });
});
