import { Gauge, Registry } from 'prom-client';
import type { ApiDeps } from './app.js';

/** Prometheus metrics at /metrics, read from the live objects when scraped. */
export function metricsRegistry(deps: Pick<ApiDeps, 'ingest' | 'db' | 'hub'>): Registry {
  const registry = new Registry();
  const g = (name: string, help: string, collect: (gauge: Gauge) => void | Promise<void>) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        return collect(this);
      },
    });
  g('fleetwave_telemetry_stored_total', 'Telemetry records stored since start', (m) =>
    m.set(deps.ingest.totals.stored),
  );
  g('fleetwave_telemetry_duplicates_total', 'Telemetry records dropped as duplicates since start', (m) =>
    m.set(deps.ingest.totals.duplicates),
  );
  g('fleetwave_messages_rejected_total', 'Device messages rejected since start', (m) =>
    m.set(deps.ingest.totals.rejected),
  );
  g('fleetwave_devices', 'Registered devices', async (m) => m.set((await deps.db.fleet.listDevices()).length));
  g('fleetwave_devices_online', 'Devices online', async (m) =>
    m.set((await deps.db.fleet.listDevices()).filter((d) => d.presence === 'online').length),
  );
  g('fleetwave_telemetry_streams_open', 'Open HTTP telemetry streams', (m) => m.set(deps.hub.size));
  return registry;
}
