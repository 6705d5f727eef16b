import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FleetwaveError } from './errors.js';
import {
  cleanTelemetryTopic,
  DEVICE_TOPIC_KINDS,
  deviceTopic,
  JOB_OPERATIONS,
  JOB_REQUESTS,
  jobNotifyTopic,
  jobRequestFilters,
  jobTopic,
  parseJobTopic,
  parseTopic,
} from './topics.js';

const seg = fc.stringMatching(/^[a-zA-Z0-9_-]{1,12}$/);
const root = fc.oneof(
  fc.constant('fleetwave'),
  fc.constant('$aws/things'),
  fc.array(seg, { minLength: 1, maxLength: 3 }).map((s) => s.join('/')),
);
const device = fc.stringMatching(/^[a-zA-Z0-9:_-]{1,40}$/);
const jobId = fc.stringMatching(/^[a-zA-Z0-9_-]{1,64}$/);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof FleetwaveError) return err.code;
    throw err;
  }
  return undefined;
}

describe('topics', () => {
  it('parse(build(x)) = x for every device topic kind', () => {
    fc.assert(
      fc.property(root, device, fc.constantFrom(...DEVICE_TOPIC_KINDS), (r, d, kind) => {
        expect(parseTopic(r, deviceTopic(r, d, kind))).toEqual({ family: 'device', device: d, kind });
        expect(parseTopic(r, cleanTelemetryTopic(r, d))).toEqual({ family: 'clean', device: d });
      }),
    );
  });

  it('parse(build(x)) = x for every jobs topic', () => {
    fc.assert(
      fc.property(
        root,
        device,
        fc.constantFrom(...JOB_OPERATIONS),
        fc.constantFrom('request', 'accepted', 'rejected' as const),
        jobId,
        (r, d, op, reply, id) => {
          const withId = op === 'describe' || op === 'update';
          const parsed = parseJobTopic(r, jobTopic(r, d, op, reply, withId ? id : undefined));
          expect(parsed).toEqual(
            withId ? { family: 'jobs', thing: d, op, reply, jobId: id } : { family: 'jobs', thing: d, op, reply },
          );
          for (const which of ['notify', 'notify-next'] as const) {
            expect(parseJobTopic(r, jobNotifyTopic(r, d, which))).toEqual({ family: 'jobs-notify', thing: d, which });
          }
        },
      ),
    );
    expect(jobTopic('$aws/things', 'gw-1', 'describe', 'request', '$next')).toBe('$aws/things/gw-1/jobs/$next/get');
    expect(jobTopic('$aws/things', 'gw-1', 'start-next', 'accepted')).toBe('$aws/things/gw-1/jobs/start-next/accepted');
  });

  it('builds, parses and filters jobs requests from one table: what a filter matches, the parser accepts', () => {
    const matches = (filter: string, topic: string) => {
      const f = filter.split('/');
      const t = topic.split('/');
      return f.length === t.length && f.every((s, i) => s === '+' || s === t[i]);
    };
    fc.assert(
      fc.property(
        root,
        device,
        fc.constantFrom(...JOB_REQUESTS),
        fc.oneof(jobId, fc.constant('$next')),
        (r, d, req, id) => {
          const needsId = req.segments.includes('{jobId}');
          const allowed = !needsId || id !== '$next' || req.next === true;
          const filters = jobRequestFilters(r, d);
          if (!allowed) {
            expect(code(() => jobTopic(r, d, req.op, 'request', id))).toBe('E_TOPIC_SEGMENT');
            return;
          }
          const topic = jobTopic(r, d, req.op, 'request', needsId ? id : undefined);
          expect(filters.filter((f) => matches(f, topic))).toHaveLength(1);
          expect(parseJobTopic(r, topic)).toMatchObject({ family: 'jobs', op: req.op, reply: 'request', thing: d });
        },
      ),
    );
    expect(jobRequestFilters('$aws/things', '%u')).toEqual([
      '$aws/things/%u/jobs/get',
      '$aws/things/%u/jobs/start-next',
      '$aws/things/%u/jobs/+/get',
      '$aws/things/%u/jobs/+/update',
    ]);
    expect(parseJobTopic('$aws/things', '$aws/things/gw/jobs/$next/get')).toEqual({
      family: 'jobs',
      thing: 'gw',
      op: 'describe',
      reply: 'request',
      jobId: '$next',
    });
  });

  it('rejects wrong device ids, empty or wildcard segments, unknown kinds and foreign roots with codes', () => {
    expect(code(() => deviceTopic('fleetwave', 'bad/id', 'telemetry'))).toBe('E_TOPIC_DEVICE');
    expect(code(() => deviceTopic('fleetwave', '', 'telemetry'))).toBe('E_TOPIC_DEVICE');
    expect(code(() => deviceTopic('fleetwave', 'a+b', 'telemetry'))).toBe('E_TOPIC_DEVICE');
    expect(code(() => deviceTopic('fleet//wave', 'gw', 'telemetry'))).toBe('E_TOPIC_SEGMENT');
    expect(code(() => deviceTopic('fleetwave', 'gw', 'bogus' as never))).toBe('E_TOPIC_KIND');
    expect(code(() => parseTopic('fleetwave', 'fleetwave/devices/gw/bogus'))).toBe('E_TOPIC_KIND');
    expect(code(() => parseTopic('fleetwave', 'fleetwave/devices//telemetry'))).toBe('E_TOPIC_SEGMENT');
    expect(code(() => parseTopic('fleetwave', 'fleetwave/devices/+/telemetry'))).toBe('E_TOPIC_SEGMENT');
    expect(code(() => parseTopic('fleetwave', 'fleetwave/devices/#'))).toBe('E_TOPIC_SEGMENT');
    expect(code(() => parseTopic('fleetwave', 'fleetwave/devices/g w!/telemetry'))).toBe('E_TOPIC_DEVICE');
    expect(code(() => parseTopic('fleetwave', 'other/devices/gw/telemetry'))).toBe('E_TOPIC_ROOT');
    expect(code(() => parseTopic('fleetwave', 'fleetwave'))).toBe('E_TOPIC_KIND');
    expect(code(() => parseJobTopic('$aws/things', '$aws/things/gw/jobs/j 1/update'))).toBe('E_TOPIC_KIND');
    expect(code(() => parseJobTopic('$aws/things', '$aws/things/gw/jobs/$next/update'))).toBe('E_TOPIC_KIND');
    expect(code(() => parseJobTopic('$aws/things', '$aws/things/gw/jobs/get/maybe'))).toBe('E_TOPIC_KIND');
    expect(code(() => jobTopic('$aws/things', 'gw', 'update', 'request'))).toBe('E_TOPIC_SEGMENT');
  });

  it('never throws anything but a coded error on random topics', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (t) => {
        for (const parse of [parseTopic, parseJobTopic]) {
          try {
            parse('fleetwave', t);
          } catch (err) {
            expect(err).toBeInstanceOf(FleetwaveError);
          }
        }
      }),
    );
  });
});
