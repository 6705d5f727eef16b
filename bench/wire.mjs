// Bytes on the link per reading, wire format v1 (JSON) against v2 (chunks) in the same run (issue "Agent: an outbox
// that spares the gateway's flash and its link"). Readings go through the real Outbox (simulated
// clock, a SQLite file) and the batches it forms are counted as MQTT PUBLISH packets: fixed header, topic, packet id, payload.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Outbox, SqliteOutboxStore } from '@fleetwave/agent';
import { decodeTelemetryPayload } from '@fleetwave/shared';

const CMAPSS = fileURLToPath(new URL('../../shared/data/cmapss/train_FD001.txt', import.meta.url));
const T0 = 1_764_000_000_000;

const packetBytes = (topic, payload) => {
  const rest = 2 + Buffer.byteLength(topic) + 2 + payload.length;
  return 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
};

/**
 * Replays one device's readings ([ts, stream, value] in time order) through an Outbox: a group is committed every
 * `groupMs` of the readings' own time (maxAckDelay) or at maxGroup readings. `regime` steady: the uplink keeps up,
 * each commit's chunk goes out as it is; backlog: the uplink is offline throughout, then drains in batches of 500.
 */
function replay(device, readings, { format, groupMs, regime, maxGroup = 250 }) {
  let now = readings[0][0];
  // a real outbox file (synchronous NORMAL: what is counted here is the link, not the disk)
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-wire-'));
  const box = new Outbox(new SqliteOutboxStore(join(dir, 'o.db'), { synchronous: 'NORMAL' }), {
    device,
    capBytes: 2 ** 40,
    fullPolicy: 'drop-oldest',
    maxAckDelayMs: groupMs,
    maxGroup: 1e9,
    batchMaxRecords: 500,
    batchMaxBytes: 128 * 1024,
    format,
    now: () => now,
    wantBatches: () => (regime === 'steady' ? 8 : 0),
  });
  const topic = `fleetwave/devices/${device}/telemetry`;
  let bytes = 0;
  let payload = 0;
  let messages = 0;
  let decoded = 0;
  const send = () => {
    for (let b = box.claimBatch(); b; b = box.claimBatch()) {
      decoded += decodeTelemetryPayload(b.payload).records.length; // what is counted also decodes, whole
      bytes += packetBytes(topic, b.payload);
      payload += b.payload.length;
      messages++;
      box.acknowledge(b);
    }
  };
  let groupStart = readings[0][0];
  let inGroup = 0;
  for (const [ts, stream, value] of readings) {
    if (ts - groupStart >= groupMs || inGroup >= maxGroup) {
      box.flush();
      if (regime === 'steady') send();
      groupStart = ts;
      inGroup = 0;
    }
    now = ts;
    box.submit({ stream, priority: 'telemetry', rank: 2, ttlMs: undefined }, { ts, value }, () => {});
    inGroup++;
  }
  box.flush();
  send();
  box.close();
  rmSync(dir, { recursive: true, force: true });
  if (decoded !== readings.length) throw new Error(`${device}: ${decoded} records decoded of ${readings.length}`);
  return { perReading: bytes / readings.length, payloadPerReading: payload / readings.length, messages };
}

function cmapssDevices() {
  const rows = readFileSync(CMAPSS, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number));
  const units = new Map();
  for (const r of rows) {
    const [unit, cycle] = r;
    const list = units.get(unit) ?? [];
    // one engine = one device; its 21 sensors are 21 streams, one reading each per cycle, a cycle a second
    for (let s = 0; s < 21; s++) list.push([T0 + cycle * 1000, `sensor${s + 1}`, r[5 + s]]);
    units.set(unit, list);
  }
  return units;
}

function temperature(hours) {
  // 1 Hz, 0.01 °C resolution, a slow daily swing plus sensor noise of a few hundredths
  let seed = 7;
  const rand = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  return Array.from({ length: hours * 3600 }, (_, i) => [
    T0 + i * 1000,
    'boiler/temp',
    Math.round((21 + 2 * Math.sin((2 * Math.PI * i) / 86_400) + (rand() - 0.5) * 0.06) * 100) / 100,
  ]);
}

export function benchWire() {
  console.log(
    '\n# wire: bytes on the link per reading (MQTT PUBLISH: header, topic, packet id, payload), v1 JSON vs v2',
  );
  const regimes = [
    ['steady (uplink up, maxAckDelay 1s default: a message per commit)', { groupMs: 1000, regime: 'steady' }],
    ['steady, low-wear (maxAckDelay 5s)', { groupMs: 5000, regime: 'steady' }],
    ['backlog (uplink offline, then drained, batches of 500)', { groupMs: 1000, regime: 'backlog' }],
    ['replayed flat out (groups of maxGroup, 250 readings)', { groupMs: 2e9, regime: 'backlog' }],
  ];
  const sets = [];
  if (existsSync(CMAPSS)) {
    sets.push(['C-MAPSS FD001, 100 engines as devices, 21 sensors each as streams, a cycle a second', cmapssDevices()]);
  } else console.log(`C-MAPSS: skipped, ${CMAPSS} not found`);
  sets.push(['slowly varying temperature at 1 Hz, 24 h', new Map([['boiler', temperature(24)]])]);
  for (const [name, devices] of sets) {
    const n = [...devices.values()].reduce((s, r) => s + r.length, 0);
    console.log(`${name}: ${n.toLocaleString('en-US')} readings`);
    for (const [rname, opts] of regimes) {
      const total = { v1: [0, 0, 0], v2: [0, 0, 0] };
      for (const [id, readings] of devices) {
        for (const format of ['v1', 'v2']) {
          const r = replay(`unit${id}`, readings, { format, ...opts });
          total[format][0] += r.perReading * readings.length;
          total[format][1] += r.payloadPerReading * readings.length;
          total[format][2] += r.messages;
        }
      }
      const [b1, p1, m1] = total.v1.map((x, i) => (i < 2 ? x / n : x));
      const [b2, p2, m2] = total.v2.map((x, i) => (i < 2 ? x / n : x));
      const msgs = `${m2.toLocaleString('en-US')} messages (v1 ${m1.toLocaleString('en-US')})`;
      const aim = name.startsWith('C-MAPSS') ? ' (aim <= 12)' : '';
      console.log(
        `  ${rname}: v1 ${b1.toFixed(1)} B (payload ${p1.toFixed(1)}), v2 ${b2.toFixed(1)} B (payload ${p2.toFixed(1)})${aim}; ${(b1 / b2).toFixed(1)}x; ${msgs}`,
      );
    }
  }
}
