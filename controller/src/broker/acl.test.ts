import { describe, expect, it } from 'vitest';
import { canPublish, canSubscribe, type Principal } from './acl.js';

const r = { root: 'fleetwave', jobsRoot: 'fleetwave/jobs' };
const a: Principal = { kind: 'device', id: 'gw-a' };
const backend: Principal = { kind: 'backend', name: 'lake' };

describe('topic ACL', () => {
  it('lets a device publish only its own telemetry, status and job requests', () => {
    for (const k of ['telemetry', 'health', 'presence', 'backlog', 'config/reported']) {
      expect(canPublish(a, `fleetwave/devices/gw-a/${k}`, r)).toBe(true);
      expect(canPublish(a, `fleetwave/devices/gw-b/${k}`, r)).toBe(false);
    }
    expect(canPublish(a, 'fleetwave/devices/gw-a/config/desired', r)).toBe(false);
    expect(canPublish(a, 'fleetwave/clean/gw-a/telemetry', r)).toBe(false);
    expect(canPublish(a, 'fleetwave/jobs/gw-a/jobs/start-next', r)).toBe(true);
    expect(canPublish(a, 'fleetwave/jobs/gw-a/jobs/j1/update', r)).toBe(true);
    expect(canPublish(a, 'fleetwave/jobs/gw-a/jobs/notify-next', r)).toBe(false);
    expect(canPublish(a, 'fleetwave/jobs/gw-a/jobs/j1/update/accepted', r)).toBe(false);
    expect(canPublish(a, 'fleetwave/jobs/gw-b/jobs/start-next', r)).toBe(false);
    expect(canPublish(a, 'fleetwave/devices/gw-a', r)).toBe(false);
  });

  it('allows $next where AWS IoT Jobs does (describe), nowhere else, under any jobs root', () => {
    const aws = { root: 'fleetwave', jobsRoot: '$aws/things' };
    expect(canPublish(a, '$aws/things/gw-a/jobs/$next/get', aws)).toBe(true);
    expect(canPublish(a, 'fleetwave/jobs/gw-a/jobs/$next/get', r)).toBe(true);
    expect(canPublish(a, '$aws/things/gw-a/jobs/$next/update', aws)).toBe(false);
    expect(canPublish(a, '$aws/things/gw-a/jobs/$next/get/accepted', aws)).toBe(false);
    expect(canPublish(a, '$aws/things/gw-b/jobs/$next/get', aws)).toBe(false);
    expect(canPublish(a, '$aws/things/gw-a/jobs/j 1/get', aws)).toBe(false);
    expect(canPublish(a, '$aws/things/gw-a/jobs/get', aws)).toBe(true);
  });

  it('lets a device subscribe only to its own desired config and jobs', () => {
    expect(canSubscribe(a, 'fleetwave/devices/gw-a/config/desired', r)).toBe(true);
    expect(canSubscribe(a, 'fleetwave/jobs/gw-a/jobs/#', r)).toBe(true);
    expect(canSubscribe(a, 'fleetwave/jobs/gw-a/jobs/notify-next', r)).toBe(true);
    expect(canSubscribe(a, 'fleetwave/devices/+/config/desired', r)).toBe(false);
    expect(canSubscribe(a, 'fleetwave/devices/gw-b/config/desired', r)).toBe(false);
    expect(canSubscribe(a, 'fleetwave/devices/gw-a/telemetry', r)).toBe(false);
    expect(canSubscribe(a, 'fleetwave/jobs/+/jobs/#', r)).toBe(false);
    expect(canSubscribe(a, '#', r)).toBe(false);
    expect(canSubscribe(a, 'fleetwave/clean/#', r)).toBe(false);
  });

  it('lets a backend read the clean telemetry topics and nothing else', () => {
    expect(canSubscribe(backend, 'fleetwave/clean/#', r)).toBe(true);
    expect(canSubscribe(backend, 'fleetwave/clean/+/telemetry', r)).toBe(true);
    expect(canSubscribe(backend, '$share/g/fleetwave/clean/gw-a/telemetry', r)).toBe(true);
    expect(canSubscribe(backend, 'fleetwave/devices/gw-a/telemetry', r)).toBe(false);
    expect(canSubscribe(backend, 'fleetwave/#', r)).toBe(false);
    expect(canSubscribe(backend, '#', r)).toBe(false);
    expect(canSubscribe(backend, 'fleetwave/clean/gw-a/#', r)).toBe(false);
    expect(canPublish(backend, 'fleetwave/clean/gw-a/telemetry', r)).toBe(false);
    expect(canPublish(backend, 'fleetwave/devices/gw-a/telemetry', r)).toBe(false);
  });
});
