import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { api, cleanupAfterEach, spawnController, tmp, waitFor } from './helpers.js';

const cleanups = cleanupAfterEach();

/** One CONNECT, no retry: the CONNACK's return code (0 when connected). */
function connectOnce(url: string, opts: mqtt.IClientOptions): Promise<number> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { ...opts, reconnectPeriod: 0, connectTimeout: 30_000 });
    c.once('connect', () => {
      resolve(0);
      c.end(true);
    });
    c.once('error', (err: Error & { code?: number }) => {
      resolve(typeof err.code === 'number' ? err.code : -1);
      c.end(true);
    });
  });
}

describe('the embedded broker under a reconnect storm', () => {
  it('takes CONNECTs at --connect-rate per second, answers the rest CONNACK 3 (server unavailable), and lets them in later', async () => {
    const ctl = await spawnController(tmp('connect-rate'), [
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--connect-rate',
      '3',
    ]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const url = `mqtt://127.0.0.1:${ctl.mqtt}`;
    const token = (await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id: 'gw-1' })).body.token as string;
    // 30 at once without credentials: at most 3 a second are let through to the credentials check (refused: 5)
    const codes = await Promise.all(Array.from({ length: 30 }, (_, i) => connectOnce(url, { clientId: `anon-${i}` })));
    const busy = codes.filter((c) => c === 3).length;
    expect(busy).toBeGreaterThan(0);
    expect(codes.every((c) => c === 3 || c === 5)).toBe(true);
    // a device keeps trying (as agents do, with backoff) and gets in once the second has room
    const device = mqtt.connect(url, {
      clientId: 'gw-1',
      username: 'gw-1',
      password: token,
      reconnectPeriod: 300,
      reconnectOnConnackError: true, // mqtt.js gives up after a refused CONNACK otherwise (the agent reconnects itself)
    });
    cleanups.push(() => device.endAsync(true));
    await waitFor('the device connected', () => device.connected, 30_000);
    await waitFor('the refusals logged', () => /CONNECTs over the rate refused/.test(ctl.stdout()), 30_000);
  }, 60_000);
});
