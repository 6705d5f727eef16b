import { describe, expect, it } from 'vitest';
import { FleetwaveError } from './errors.js';
import { AgentConfig } from './schemas/agent-config.js';
import { RolloutPlan } from './schemas/plan.js';
import { parseYamlWith } from './yaml.js';

function issuesOf(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FleetwaveError);
    return err as FleetwaveError;
  }
  throw new Error('accepted');
}

describe('parseYamlWith', () => {
  it('fills defaults for a minimal agent config', () => {
    const c = parseYamlWith(AgentConfig, 'device:\n  id: gw-1\n');
    expect(c.ingest.port).toBe(1884);
    expect(c.outbox.synchronous).toBe('FULL');
    expect(c.uplink.backlogInterval).toBe(30_000);
  });

  it('names the file, line and field of each problem', () => {
    const text = 'device:\n  id: gw-1\nuplink:\n  url: ftp://nope\n  inflightWindow: 0\n';
    const e = issuesOf(() => parseYamlWith(AgentConfig, text, 'agent.yaml'));
    expect(e.code).toBe('E_CONFIG_INVALID');
    expect(e.message).toContain('agent.yaml:4:8 uplink.url:');
    expect(e.message).toContain('agent.yaml:5:19 uplink.inflightWindow:');
  });

  it('points a missing field at its parent and reports YAML syntax errors with their line', () => {
    expect(issuesOf(() => parseYamlWith(AgentConfig, 'device: {}\n', 'a.yaml')).message).toMatch(
      /a\.yaml:1:9 device\.id:/,
    );
    expect(issuesOf(() => parseYamlWith(AgentConfig, 'device:\n  id: [1,\n', 'b.yaml')).message).toMatch(
      /b\.yaml:\d+:\d+ \(yaml\)/,
    );
    expect(issuesOf(() => parseYamlWith(AgentConfig, 'a: 1\na: 2\n')).message).toMatch(/\(yaml\)/);
  });

  it('parses a rollout plan with durations and reports a bad wave by line', () => {
    const plan = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: app-1-2
release: { name: gateway-app, version: 1.2.0 }
waves:
  - { name: canary, count: 2, bake: 30m }
  - { percent: 100, bake: 2h }
`;
    expect(parseYamlWith(RolloutPlan, plan).waves[0]!.bake).toBe(30 * 60_000);
    const bad = plan.replace('bake: 2h', 'bake: soon');
    expect(issuesOf(() => parseYamlWith(RolloutPlan, bad, 'p.yaml')).message).toMatch(/p\.yaml:7:\d+ waves\.1\.bake:/);
  });
});

describe('the example rollout plan in firmware-manifests/', () => {
  it('is a valid plan', async () => {
    const { readFileSync } = await import('node:fs');
    const file = new URL('../../firmware-manifests/examples/rollout-gateway-app-1.2.0.yaml', import.meta.url);
    const plan = parseYamlWith(RolloutPlan, readFileSync(file, 'utf8'), 'rollout-gateway-app-1.2.0.yaml');
    expect(plan.waves.map((w) => w.name)).toEqual(['canary', 'early', 'everyone']);
    expect(plan.maintenanceWindows[0]!.duration).toBe(3 * 3_600_000);
  });
});
