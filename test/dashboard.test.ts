import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { type Browser, chromium, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { api, cleanupAfterEach, freePort, spawnController, tmp } from './helpers.js';
import { appArchive, filesRelease, publishRelease, trustedKey } from './release-helpers.js';

const cleanups = cleanupAfterEach();
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(import.meta.dirname, 'screenshots');
const required = process.env.FLEETWAVE_REQUIRE_SERVICES === '1';
if (!existsSync(CHROMIUM)) {
  const msg = `${CHROMIUM} not found (apt-get install chromium): the dashboard's browser tests ${required ? 'cannot run' : 'are skipped'}`;
  if (required) throw new Error(msg);
  console.warn(msg);
}

/**
 * A gateway that speaks the jobs protocol and reports what it runs (presence) and its health: it installs any release
 * except 3.x, which fails its health check (the device rolls itself back and reports FAILED).
 */
async function gateway(mqttUrl: string, id: string, token: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(mqttUrl, { clientId: id, username: id, password: token, reconnectPeriod: 0 });
  const base = `fleetwave/jobs/${id}/jobs`;
  const presence = (version: string) =>
    c.publish(
      `fleetwave/devices/${id}/presence`,
      JSON.stringify({ v: 1, device: id, state: 'online', ts: Date.now(), releases: { 'gateway-app': version } }),
      { qos: 1 },
    );
  c.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString());
    if (topic === `${base}/notify-next` && body.execution) c.publish(`${base}/start-next`, '{}', { qos: 1 });
    else if (topic === `${base}/start-next/accepted` && body.execution) {
      const version = body.execution.jobDocument.manifest.version as string;
      const ok = !version.startsWith('3.');
      setTimeout(() => {
        c.publish(
          `${base}/${body.execution.jobId}/update`,
          JSON.stringify({
            status: ok ? 'SUCCEEDED' : 'FAILED',
            expectedVersion: body.execution.versionNumber,
            statusDetails: ok ? { stage: 'succeeded' } : { stage: 'failed', code: 'E_HEALTH_CHECK' },
          }),
          { qos: 1 },
        );
        if (ok) presence(version);
        c.publish(`${base}/start-next`, '{}', { qos: 1 });
      }, 200);
    }
  });
  await c.subscribeAsync([`${base}/notify-next`, `${base}/start-next/accepted`], { qos: 1 });
  presence('1.0.0');
  // six hours of health, one report every 10 minutes
  for (let i = 36; i >= 0; i--) {
    const ts = Date.now() - i * 600_000;
    c.publish(
      `fleetwave/devices/${id}/health`,
      JSON.stringify({
        v: 1,
        device: id,
        ts,
        cpuTempC: 48 + 6 * Math.sin(i / 6),
        memUsedPct: 40 + (i % 5),
        load1: 0.4,
        wifiSignalDbm: -60,
        reconnects: 0,
        backlogDepth: 0,
      }),
      { qos: 1 },
    );
  }
  c.publish(`${base}/start-next`, '{}', { qos: 1 });
  return c;
}

/** What an agent sends for a stream whose filter rule has mirrorRaw: 20 raw readings, of which its deadband kept 5. */
function telemetryWithRaw(c: MqttClient, id: string) {
  const t0 = Date.now() - 60_000;
  const raw = Array.from({ length: 20 }, (_, i) => ({
    stream: '_raw/sensors/t',
    ts: t0 + i * 1000,
    value: 20 + i * 0.1,
  }));
  const kept = raw.filter((_, i) => i % 4 === 0).map((r) => ({ ...r, stream: 'sensors/t' }));
  const records = [...raw, ...kept].map((r, i) => ({ kind: 'reading', seq: i + 1, ...r }));
  c.publish(
    `fleetwave/devices/${id}/telemetry`,
    JSON.stringify({ v: 1, device: id, seqFrom: 1, seqTo: records.length, sentAt: Date.now(), records }),
    { qos: 1 },
  );
}

const plan = (version: string, waves: string, extra = '') => `apiVersion: fleetwave/v1
kind: RolloutPlan
name: app-${version.replaceAll('.', '-')}
release: { name: gateway-app, version: ${version} }
waves:
${waves}
${extra}`;

async function shot(page: Page, name: string) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

describe.skipIf(!existsSync(CHROMIUM))('the dashboard in Chromium (playwright-core)', () => {
  it('signs in, shows the fleet, starts a rollout, pauses and resumes it, watches the waves complete, and shows a failed canary rolled back', async () => {
    const dir = tmp('dashboard');
    const ctlDir = join(dir, 'ctl');
    const key = trustedKey(ctlDir);
    const mqttPort = await freePort();
    const ctl = await spawnController(ctlDir, ['--mqtt-port', String(mqttPort), '--http-port', '0']);
    cleanups.push(() => ctl.kill('SIGKILL'));
    for (const v of ['1.0.0', '2.0.0', '3.0.0']) {
      const archive = await appArchive(dir, v, { 'app.txt': v });
      await publishRelease(ctl.url, ctl.adminToken, filesRelease(key, v, archive), archive);
    }
    const devices = Array.from({ length: 8 }, (_, i) => `gw-${i}`);
    for (const [i, id] of devices.entries()) {
      const r = await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', {
        id,
        tags: { site: i % 2 ? 'north' : 'south' },
        hardware: 'rpi4',
      });
      const c = await gateway(`mqtt://127.0.0.1:${mqttPort}`, id, r.body.token);
      if (i === 0) telemetryWithRaw(c, id);
      cleanups.push(() => c.endAsync());
    }

    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    cleanups.push(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => d.accept());

    // sign in: a wrong token is refused with a message, the admin token works
    await page.goto(`${ctl.url}/`);
    await page.getByLabel('API token').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Sign-in failed' }).waitFor();
    await page.getByLabel('API token').fill(ctl.adminToken);
    await page.keyboard.press('Enter');

    // the fleet: every device, online, running 1.0.0, filterable by tag
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    // the live stream is up before any event was sent (the keep-alive comes only every 15 s)
    await page.locator('#live', { hasText: /^live$/ }).waitFor({ timeout: 10_000 });
    await page.getByText('8 devices · 8 online').waitFor({ timeout: 15_000 });
    await page.getByRole('cell', { name: 'gateway-app 1.0.0' }).first().waitFor();
    // health at a glance: the newest report's figures (gw-3's last report: 48 °C, memory 40 %)
    await page.getByRole('row', { name: /gw-3/ }).getByRole('cell', { name: '48 °C · mem 40 %' }).waitFor();
    await page.getByLabel('Filter by tag').fill('site=north');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('4 of 8 devices').waitFor();
    await shot(page, 'fleet');
    await page.getByLabel('Filter by tag').fill('');
    await page.getByRole('button', { name: 'Filter' }).click();

    // a device: its health charts (uPlot canvases)
    await page.getByRole('link', { name: 'gw-3' }).click();
    await page.getByRole('heading', { name: 'Device gw-3' }).waitFor();
    await page.locator('figure.chart canvas').first().waitFor();
    expect(await page.locator('figure.chart').count()).toBeGreaterThanOrEqual(3);
    await shot(page, 'device');
    // tags and hardware edited on the device page (what selectors and layers match on); bad input changes nothing
    await page.getByLabel('Tags', { exact: true }).fill('site=north rack7');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').filter({ hasText: '"rack7" is not key=value' }).waitFor();
    await page.getByLabel('Tags', { exact: true }).fill('site=north rack=7');
    await page.getByLabel('Hardware', { exact: true }).fill('rpi5');
    await page.getByRole('button', { name: 'Save' }).click();
    // the page is drawn again from the controller: the new values, and what the save did
    await page
      .getByRole('status')
      .filter({ hasText: 'Saved tags and hardware: site=north rack=7, hardware rpi5.' })
      .waitFor();
    expect(await page.getByLabel('Tags', { exact: true }).inputValue()).toBe('site=north rack=7');
    const saved = (await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-3')).body.device;
    expect(saved).toMatchObject({ tags: { site: 'north', rack: '7' }, hardware: 'rpi5' });
    await page.getByLabel('Tags', { exact: true }).fill('site=north');
    await page.getByLabel('Hardware', { exact: true }).fill('rpi4');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved tags and hardware: site=north, hardware rpi4.' }).waitFor();
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-3')).body.device).toMatchObject({
      tags: { site: 'north' },
      hardware: 'rpi4',
    });
    // an operator confirms a failure (what the predictor learns from), and takes it back
    await page.getByLabel('Failure mode').selectOption('thermal');
    await page.getByRole('button', { name: 'Mark failed' }).click();
    await page.locator('#failure-label', { hasText: 'Labelled failed (thermal)' }).waitFor();
    await page.getByRole('button', { name: 'Remove label' }).click();
    await page.getByRole('button', { name: 'Mark failed' }).waitFor();

    // a rollout from the dashboard: preview, start; the canary completes, the second wave waits for approval
    await page.getByRole('link', { name: 'Rollouts' }).click();
    await page
      .getByLabel('Rollout plan (YAML)')
      .fill(plan('2.0.0', '  - { name: canary, count: 2 }\n  - { percent: 100, approval: true }'));
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByText('8 devices in 2 waves: canary 2, wave-2 6').waitFor();
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.getByRole('heading', { name: /^Rollout app-2-0-0-1/ }).waitFor();
    await page.locator('.wave-status[data-wave="0"]', { hasText: 'succeeded' }).waitFor({ timeout: 20_000 });
    await page.locator('#rollout-status', { hasText: 'awaiting-approval' }).waitFor();
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('#rollout-status', { hasText: 'paused' }).waitFor();
    await shot(page, 'rollout-paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('#rollout-status', { hasText: 'awaiting-approval' }).waitFor();
    await page.getByRole('button', { name: 'Approve wave 2' }).click();
    await page.locator('#rollout-status', { hasText: 'completed' }).waitFor({ timeout: 20_000 });
    await page.getByText('6 succeeded').waitFor();
    await shot(page, 'rollout-completed');

    // a bad release: its canary fails, the rollout rolls the canary back by itself
    await page.getByRole('link', { name: '← Rollouts' }).click();
    await page
      .getByLabel('Rollout plan (YAML)')
      .fill(
        plan(
          '3.0.0',
          '  - { name: canary, count: 2, failureThreshold: { percent: 50, minFinished: 1 } }\n  - { percent: 100 }',
          'onFailure: rollback\n',
        ),
      );
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.getByRole('heading', { name: /^Rollout app-3-0-0-1/ }).waitFor();
    await page.locator('#rollout-status', { hasText: /rolling-back|rolled-back/ }).waitFor({ timeout: 20_000 });
    await page.getByText(/wave canary failed: .*E_HEALTH_CHECK/).waitFor();
    await shot(page, 'rollout-failed-canary');

    // the other pages render, with their controls labelled; no script errors anywhere
    // telemetry: a stream's raw readings against what the edge kept
    await page.getByRole('link', { name: 'Telemetry' }).click();
    await page.getByRole('heading', { name: 'Telemetry' }).waitFor();
    await page.getByText('20 raw readings, 5 kept by the edge filters (75% not sent)').waitFor();
    await page.getByText('sensors/t: raw and kept').waitFor();
    await shot(page, 'telemetry');
    await page.getByRole('link', { name: 'Events' }).click();
    await page.getByRole('cell', { name: 'wave.failed' }).first().waitFor();
    await shot(page, 'events');
    // the cluster: one controller here, leading (the page lists the replicas and who leads)
    await page.getByRole('link', { name: 'Cluster' }).click();
    await page.getByRole('heading', { name: 'Cluster' }).waitFor();
    await page.getByText(/^Leader: .*fencing token 1\)\. This page is served by /).waitFor();
    await page.getByRole('cell', { name: 'leader', exact: true }).waitFor();
    for (const [path, title] of [
      ['#/fleet', 'Fleet'],
      ['#/device/gw-3', 'Device gw-3'],
      ['#/rollouts', 'Rollouts'],
      ['#/telemetry', 'Telemetry'],
    ] as const) {
      await page.goto(`${ctl.url}/ui/${path}`);
      // a change of hash only: wait for this page's own heading, not the one still on screen
      await page.getByRole('heading', { name: title, exact: true, level: 1 }).waitFor();
      const unlabelled = await page.$$eval('main input, main textarea, main select', (els) =>
        els.filter((e) => (e as unknown as { labels: unknown[] | null }).labels?.length === 0).map((e) => e.id),
      );
      expect(unlabelled, path).toEqual([]);
    }
    // keyboard: from the top of the page the skip link comes first, then the navigation; Enter follows a link
    await page.reload();
    await page.locator('main h1').waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Fleet');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    // the live stream is up before any event was sent (the keep-alive comes only every 15 s)
    await page.locator('#live', { hasText: /^live$/ }).waitFor({ timeout: 10_000 });
    // a phone-sized screen
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${ctl.url}/ui/#/fleet`);
    await page.getByText('8 devices · 8 online').waitFor();
    await shot(page, 'fleet-phone');
    expect(errors).toEqual([]);
  }, 120_000);
});
