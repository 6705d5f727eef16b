import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  api,
  type ControllerProcess,
  cleanupAfterEach,
  enrolDevice,
  freePort,
  sensor,
  spawnAgent,
  spawnController,
  tmp,
  waitForAsync,
} from './helpers.js';

const cleanups = cleanupAfterEach();

const layer = (name: string, priority: number, selector: object, config: object) => ({
  apiVersion: 'fleetwave/v1',
  kind: 'ConfigLayer',
  name,
  priority,
  selector,
  config,
});

describe('desired configuration end to end (controller and agents as child processes)', () => {
  it('reaches exactly the matching devices, survives a device offline and a controller restart', async () => {
    const dir = tmp('cfg-e2e');
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const args = ['--mqtt-port', String(mqttPort), '--http-port', String(httpPort)];
    let ctl: ControllerProcess = await spawnController(join(dir, 'ctl'), args);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    const configs: Record<string, string> = {};
    for (const [id, site] of [
      ['gw-n1', 'north'],
      ['gw-n2', 'north'],
      ['gw-s1', 'south'],
    ] as const) {
      configs[id] = (await enrolDevice(ctl, id, dir, url, { site })).config;
    }
    const agents: Record<string, AgentProcess> = {};
    const startAgent = async (id: string) => {
      agents[id] = await spawnAgent(['--config', configs[id]!]);
      cleanups.push(() => agents[id]!.kill('SIGKILL'));
    };
    await startAgent('gw-n1');
    await startAgent('gw-n2');
    const status = async () =>
      Object.fromEntries(
        (
          (await api(ctl.url, ctl.adminToken, 'GET', '/api/config/status')).body.devices as {
            device: string;
            desired: number;
            state: string;
          }[]
        ).map((d) => [d.device, `${d.state} v${d.desired}`]),
      );

    const applied = await api(
      ctl.url,
      ctl.adminToken,
      'POST',
      '/api/config/layers',
      layer('north-db', 10, { tags: { site: 'north' } }, { filters: [{ match: '**', deadband: { absolute: 5 } }] }),
    );
    expect(applied.body.changed).toEqual(['gw-n1', 'gw-n2']);
    await waitForAsync(
      'north devices applied v1',
      async () => JSON.stringify(await status()) === JSON.stringify({ 'gw-n1': 'applied v1', 'gw-n2': 'applied v1' }),
    );

    // the rules run on the device: 0, 1, 2, 10 → 0 and 10 reach the cloud
    const s = await sensor(agents['gw-n1']!.ingestUrl, 'sn1');
    for (const v of [0, 1, 2, 10]) await s.send('sensors/x/v', v);
    const values = async (device: string) =>
      (
        (await api(ctl.url, ctl.adminToken, 'GET', `/api/telemetry?device=${device}&stream=x/v`)).body.records as {
          record: { value: number };
        }[]
      ).map((r) => r.record.value);
    await waitForAsync('filtered readings', async () => (await values('gw-n1')).length >= 2);
    expect(await values('gw-n1')).toEqual([0, 10]);
    await s.client.endAsync();

    // a layer for an offline device: it lags, then catches up when it connects
    await api(
      ctl.url,
      ctl.adminToken,
      'POST',
      '/api/config/layers',
      layer('south', 10, { tags: { site: 'south' } }, { backlogIntervalMs: 5000 }),
    );
    expect((await status())['gw-s1']).toBe('lagging v1');
    await startAgent('gw-s1');
    await waitForAsync('south applied', async () => (await status())['gw-s1'] === 'applied v1');

    // the controller restarts; a device is offline during a change; both catch up
    await ctl.kill('SIGTERM');
    ctl = await spawnController(join(dir, 'ctl'), args);
    await agents['gw-n2']!.kill('SIGTERM');
    const r2 = await api(
      ctl.url,
      ctl.adminToken,
      'POST',
      '/api/config/layers',
      layer('north-db', 10, { tags: { site: 'north' } }, { filters: [{ match: '**', deadband: { absolute: 50 } }] }),
    );
    expect(r2.body.changed).toEqual(['gw-n1', 'gw-n2']);
    await waitForAsync('gw-n1 applied v2', async () => (await status())['gw-n1'] === 'applied v2');
    expect((await status())['gw-n2']).toBe('lagging v2');
    await startAgent('gw-n2');
    await waitForAsync('gw-n2 applied v2 after reconnecting', async () => (await status())['gw-n2'] === 'applied v2');
    expect((await status())['gw-s1']).toBe('applied v1'); // untouched by the north layer
    const eff = (await api(ctl.url, ctl.adminToken, 'GET', '/api/config/effective/gw-n2')).body;
    expect(eff.provenance).toEqual({ 'filters[**]': 'north-db' });
  }, 90_000);
});
