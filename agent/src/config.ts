import { readFileSync } from 'node:fs';
import { AgentConfig, FleetwaveError, parseWith, parseYamlWith } from '@fleetwave/shared';

export interface ConfigOverrides {
  deviceId?: string | undefined;
  uplinkUrl?: string | undefined;
  listenHost?: string | undefined;
  listenPort?: number | undefined;
  dataDir?: string | undefined;
  logLevel?: string | undefined;
  /** outbox.maxAckDelay, as a duration (`5ms`, `2s`) or milliseconds. */
  maxAckDelay?: string | undefined;
}

/** Reads and validates the YAML config (errors name line and field), then applies command-line overrides. */
export function loadAgentConfig(path: string | undefined, o: ConfigOverrides = {}): AgentConfig {
  let base: Record<string, unknown> = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new FleetwaveError('E_CONFIG_READ', `cannot read config file ${path}: ${(err as Error).message}`);
    }
    base = structuredClone(parseYamlWith(AgentConfig, text, path)) as Record<string, unknown>;
  } else if (!o.deviceId) {
    throw new FleetwaveError('E_CONFIG_INVALID', 'no device id: pass --device-id, or --config with device.id in it');
  }
  const sub = (k: string) => ({ ...((base[k] as Record<string, unknown> | undefined) ?? {}) });
  const merged = {
    ...base,
    device: sub('device'),
    ingest: sub('ingest'),
    uplink: sub('uplink'),
    log: sub('log'),
    outbox: sub('outbox'),
  };
  if (o.deviceId) merged.device.id = o.deviceId;
  if (o.uplinkUrl) merged.uplink.url = o.uplinkUrl;
  if (o.listenHost) merged.ingest.host = o.listenHost;
  if (o.listenPort !== undefined) merged.ingest.port = o.listenPort;
  if (o.dataDir) (merged as Record<string, unknown>).dataDir = o.dataDir;
  if (o.logLevel) merged.log.level = o.logLevel;
  if (o.maxAckDelay !== undefined) {
    merged.outbox.maxAckDelay = /^\d+$/.test(o.maxAckDelay) ? Number(o.maxAckDelay) : o.maxAckDelay;
  }
  try {
    return parseWith(AgentConfig, merged, 'configuration (file and flags)');
  } catch (err) {
    // a bad flag is a configuration error like a bad file (exit status 78)
    if (err instanceof FleetwaveError && err.code === 'E_SCHEMA')
      throw new FleetwaveError('E_CONFIG_INVALID', err.message, err.details);
    throw err;
  }
}
