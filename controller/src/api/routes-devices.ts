import {
  DeviceAddRequest,
  DeviceId,
  DeviceUpdateRequest,
  EnrolmentTokenRequest,
  EnrolRequest,
  FleetwaveError,
  parseWith,
} from '@fleetwave/shared';
import type { FastifyInstance } from 'fastify';
import { hashSecret, newId, newSecret } from '../auth/secrets.js';
import { healthMetrics } from '../predict/health-store.js';
import type { DeviceRecord } from '../store/fleet-store.js';
import { agentConfigSnippet, agentSetup } from './agent-setup.js';
import type { ApiDeps, Guard } from './app.js';

/** A device as the API shows it: never its credential hashes. */
export function publicDevice(d: DeviceRecord) {
  const { tokenHash: _t, mosquittoHash: _m, ...rest } = d;
  return rest;
}

/** What the fleet list shows of a device's health: its newest report's headline figures and warnings. */
async function healthSummary(deps: ApiDeps, id: string) {
  const report = deps.ingest.latestHealth.get(id);
  const latest = report ? { ts: report.ts, metrics: healthMetrics(report) } : await deps.prediction?.latestHealth(id);
  if (!latest) return undefined;
  const m = latest.metrics;
  const pick = (k: string) => (typeof m[k] === 'number' ? m[k] : undefined);
  return {
    at: latest.ts,
    cpuTempC: pick('cpuTempC'),
    memUsedPct: pick('memUsedPct'),
    diskUsedPct: pick('diskUsedPct'),
    underVoltage: m['throttled.underVoltage'] === 1,
    throttled: m['throttled.throttled'] === 1,
  };
}

function deviceIdParam(params: unknown): string {
  return parseWith(DeviceId, (params as { id?: unknown }).id, 'device id');
}

export function deviceRoutes(app: FastifyInstance, deps: ApiDeps, guard: Guard): void {
  const { auth, now } = deps;
  const store = deps.db.fleet;

  const agentOf = (id: string, hardware: string | null) => {
    const agent = agentSetup(id, hardware, {
      uplinkUrl: deps.agentUplinkUrl(),
      root: deps.root,
      jobsRoot: deps.jobsRoot ?? 'fleetwave/jobs',
      trusted: deps.rollouts?.releases.trustedKeys() ?? [],
    });
    return { agent, agentConfig: agentConfigSnippet(agent) };
  };

  const register = async (id: string, tags: Record<string, string>, hardware: string | undefined, actor: string) => {
    if (id.startsWith('backend-')) {
      // backend client ids start with backend-: a device of that name could be pushed off the broker by a backend
      throw new FleetwaveError('E_SCHEMA', 'device ids may not start with backend- (reserved for backend clients)');
    }
    const creds = auth.deviceCredentials();
    await store.addDevice({
      id,
      tags,
      hardware: hardware ?? null,
      createdAt: now(),
      tokenHash: creds.tokenHash,
      mosquittoHash: creds.mosquittoHash,
    });
    await auth.audit(actor, 'device.add', id, 'ok');
    return {
      device: publicDevice((await store.getDevice(id))!),
      token: creds.token,
      ...agentOf(id, hardware ?? null),
    };
  };

  app.get('/api/devices', { preHandler: guard('viewer', 'device.list') }, async () => ({
    devices: await Promise.all(
      (await store.listDevices()).map(async (d) => {
        const risk = deps.prediction?.score(d.id);
        const health = await healthSummary(deps, d.id);
        return {
          ...publicDevice(d),
          ...(risk && { risk: { risk: risk.risk, mode: risk.mode, signals: risk.signals, at: risk.at } }),
          ...(health && { health }),
        };
      }),
    ),
  }));

  app.post('/api/devices', { preHandler: guard('operator', 'device.add') }, async (req, reply) => {
    const body = parseWith(DeviceAddRequest, req.body, 'device');
    const r = await register(body.id, body.tags, body.hardware, req.caller!.actor);
    await deps.config.deviceChanged(body.id);
    reply.status(201);
    return r;
  });

  app.get('/api/devices/:id', { preHandler: guard('viewer', 'device.show') }, async (req) => {
    const id = deviceIdParam(req.params);
    const d = await store.getDevice(id);
    if (!d) throw new FleetwaveError('E_DEVICE_UNKNOWN', `no device ${id}`);
    return {
      device: publicDevice(d),
      backlog: deps.ingest.latestBacklog.get(id) ?? null,
      health: deps.ingest.latestHealth.get(id) ?? null,
      missingSequences: await deps.db.telemetry.missingRanges(id),
      rejected: deps.ingest.rejected.get(id) ?? {},
    };
  });

  app.patch('/api/devices/:id', { preHandler: guard('operator', 'device.update') }, async (req) => {
    const id = deviceIdParam(req.params);
    const body = parseWith(DeviceUpdateRequest, req.body, 'device update');
    const d = await store.getDevice(id);
    if (!d) throw new FleetwaveError('E_DEVICE_UNKNOWN', `no device ${id}`);
    if (d.revokedAt !== null) throw new FleetwaveError('E_DEVICE_REVOKED', `device ${id} is revoked`);
    const patch = {
      ...(body.tags !== undefined && JSON.stringify(body.tags) !== JSON.stringify(d.tags) && { tags: body.tags }),
      ...(body.hardware !== undefined && body.hardware !== d.hardware && { hardware: body.hardware }),
    };
    const changed = Object.keys(patch);
    if (changed.length) {
      await store.updateDevice(id, patch);
      // layers select on tags and hardware: the device's effective configuration may change with them
      await deps.config.deviceChanged(id);
    }
    await auth.audit(
      req.caller!.actor,
      'device.update',
      id,
      'ok',
      changed.length ? `changed ${changed.join(', ')}` : 'unchanged',
    );
    return { device: publicDevice((await store.getDevice(id))!), changed };
  });

  app.post('/api/devices/:id/revoke', { preHandler: guard('operator', 'device.revoke') }, async (req) => {
    const id = deviceIdParam(req.params);
    if (!(await store.getDevice(id))) throw new FleetwaveError('E_DEVICE_UNKNOWN', `no device ${id}`);
    const changed = await store.revokeDevice(id, now());
    deps.kick(id);
    await auth.audit(req.caller!.actor, 'device.revoke', id, 'ok', changed ? '' : 'already revoked');
    return { device: publicDevice((await store.getDevice(id))!) };
  });

  app.post('/api/enrolment-tokens', { preHandler: guard('admin', 'enrolment.create') }, async (req, reply) => {
    const body = parseWith(EnrolmentTokenRequest, req.body ?? {}, 'enrolment token');
    const id = newId();
    const secret = newSecret();
    await store.addEnrolmentToken({
      id,
      hash: hashSecret(secret),
      usesLeft: body.uses,
      tags: body.tags,
      createdAt: now(),
      expiresAt: body.expiresInHours ? now() + body.expiresInHours * 3_600_000 : null,
    });
    await auth.audit(req.caller!.actor, 'enrolment.create', id, 'ok', `uses ${body.uses}`);
    reply.status(201);
    return { token: `fwe_${id}_${secret}`, uses: body.uses };
  });

  // A gateway registers itself once with a fleet enrolment token (no bearer token: the enrolment token is the proof).
  app.post('/api/enrol', async (req, reply) => {
    const body = parseWith(EnrolRequest, req.body, 'enrolment');
    const m = /^fwe_([0-9a-f]{12})_(.+)$/.exec(body.token);
    const t = m ? await store.getEnrolmentToken(m[1]!) : undefined;
    const valid =
      t && (t.expiresAt === null || t.expiresAt > now()) && (await auth.verify('enrolment', t.id, m![2]!, t.hash));
    if (!t || !valid) {
      await auth.audit(`enrol:${body.id}`, 'device.enrol', body.id, 'denied', 'invalid or expired enrolment token');
      throw new FleetwaveError('E_AUTH', 'the enrolment token is invalid or expired');
    }
    // the use and the registration commit together: a refused registration (the id is taken) uses nothing
    const result = await deps.db.transaction(async () => {
      if (!(await store.useEnrolmentToken(t.id))) {
        throw new FleetwaveError('E_FORBIDDEN', 'the enrolment token has no uses left');
      }
      return register(body.id, t.tags, body.hardware, `enrol:${t.id}`);
    });
    await deps.config.deviceChanged(body.id);
    reply.status(201);
    return result;
  });
}
