import { Readable } from 'node:stream';
import { FleetwaveError, jsonSchemaFiles } from '@fleetwave/shared';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { ApiCaller, Authenticator } from '../auth/authenticator.js';
import { roleAllows } from '../auth/authenticator.js';
import type { ConfigService } from '../config/service.js';
import type { TelemetryIngest } from '../ingest/telemetry-ingest.js';
import type { PredictionService } from '../predict/service.js';
import type { ControllerDatabase } from '../store/database.js';
import type { Role } from '../store/fleet-store.js';
import { errorBody } from './errors.js';
import { metricsRegistry } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { adminRoutes } from './routes-admin.js';
import { certificateRoutes } from './routes-certificates.js';
import { configRoutes } from './routes-config.js';
import { dashboardRoutes } from './routes-dashboard.js';
import { deviceRoutes } from './routes-devices.js';
import { predictRoutes } from './routes-predict.js';
import { type RolloutApiDeps, rolloutRoutes } from './routes-rollouts.js';
import { telemetryRoutes } from './routes-telemetry.js';
import type { TelemetryHub } from './telemetry-hub.js';

export interface ApiDeps {
  db: ControllerDatabase;
  auth: Authenticator;
  ingest: TelemetryIngest;
  hub: TelemetryHub;
  config: ConfigService;
  log: Logger;
  now: () => number;
  /** Drops a revoked device's live MQTT session. */
  kick: (deviceId: string) => void;
  /** What `device add` prints for the agent's config: the broker URL devices use, and the topic root. */
  agentUplinkUrl: () => string;
  root: string;
  /** The jobs root agents take jobs under (default fleetwave/jobs). */
  jobsRoot?: string;
  /** Releases and rollouts (absent in API tests that need only the registry). */
  rollouts?: RolloutApiDeps;
  /** This replica's id and its leadership's refused writes (GET /api/cluster). */
  replicaId?: string;
  leadership?: () => { refused: { byDatabase: number; locally: number } } | undefined;
  /** Failure prediction (absent in API tests that need only the registry). */
  prediction?: PredictionService;
  /** The data dir whose `ca/` holds the fleet CA (device certificates; absent: no certificate routes). */
  dataDir?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: ApiCaller;
  }
}

/** No request body the API takes is nested this deep; deeper ones are refused with E_SCHEMA. */
export const MAX_BODY_DEPTH = 32;

/** Whether a parsed JSON value nests deeper than `max` (iterative: a hostile depth cannot overflow the stack). */
export function tooDeep(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= max) return true;
    for (const child of Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, d + 1]);
  }
  return false;
}

export type Guard = (need: Role, action: string) => (req: FastifyRequest) => Promise<void>;

/** The HTTP API, built by a factory; only the controller's start() listens (tests use inject()). */
export function buildApi(deps: ApiDeps): FastifyInstance {
  const logger: FastifyBaseLogger = deps.log.child({ part: 'api' }, { level: 'warn' });
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: 256 * 1024,
    // errors the router raises before any route runs (a path parameter too long, a malformed URL) get the API's coded
    // body like every other error
    frameworkErrors: (err, _req, reply) => {
      const { status, body } = errorBody(err);
      (reply as FastifyReply).status(status).send(body);
    },
  });

  const guard: Guard = (need, action) => async (req) => {
    const header = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/.exec(header)?.[1];
    const caller = token ? await deps.auth.apiToken(token) : null;
    if (!caller) {
      await deps.auth.audit('anonymous', action, req.url, 'denied', token ? 'invalid token' : 'no bearer token');
      throw new FleetwaveError('E_AUTH', 'a valid bearer token is required (Authorization: Bearer fwt_…)');
    }
    if (!roleAllows(caller.role, need)) {
      await deps.auth.audit(caller.actor, action, req.url, 'denied', `role ${caller.role} lacks ${need}`);
      throw new FleetwaveError('E_FORBIDDEN', `role ${caller.role} may not ${action} (needs ${need})`);
    }
    req.caller = caller;
  };

  app.setErrorHandler((err, _req, reply: FastifyReply) => {
    const { status, body } = errorBody(err);
    if (status >= 500) deps.log.error({ err }, 'api error');
    reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    reply
      .status(404)
      .send({ error: { code: 'E_NOT_FOUND', message: `no route ${req.method} ${req.url}`, transient: false } });
  });

  // Bodies are checked before any route sees them: a raw stream only where a route asks for one (artifact uploads),
  // and JSON no deeper than MAX_BODY_DEPTH (recursive code past the boundary, JSON.stringify among it, would overflow)
  app.addHook('preValidation', async (req) => {
    const body = req.body as unknown;
    if (body instanceof Readable) {
      if ((req.routeOptions.config as { rawBody?: boolean }).rawBody) return;
      body.resume();
      throw new FleetwaveError(
        'E_SCHEMA',
        `${req.method} ${req.routeOptions.url ?? req.url} takes a JSON body (content-type: application/json), not a raw stream`,
      );
    }
    // no route takes a JSON null; routes read a missing body as {} (`req.body ?? {}`), and null must not pass for it
    if (body === null) throw new FleetwaveError('E_SCHEMA', 'the body is JSON null: send an object, or no body');
    if (tooDeep(body, MAX_BODY_DEPTH)) {
      throw new FleetwaveError('E_SCHEMA', `the body is nested deeper than ${MAX_BODY_DEPTH} levels`);
    }
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/openapi.json', async () => openApiDocument());
  // the JSON Schemas of every message, for backends in other languages (the same files as shared/json-schema/)
  const schemas = jsonSchemaFiles();
  app.get('/schemas', async () => ({ schemas: Object.keys(schemas).map((f) => `/schemas/${f}`) }));
  app.get('/schemas/:file', async (req, reply) => {
    const text = schemas[(req.params as { file: string }).file];
    if (!text) throw new FleetwaveError('E_NOT_FOUND', 'no such schema: GET /schemas lists them');
    reply.header('content-type', 'application/schema+json');
    return text;
  });
  const registry = metricsRegistry(deps);
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  deviceRoutes(app, deps, guard);
  if (deps.dataDir) certificateRoutes(app, { ...deps, dataDir: deps.dataDir }, guard);
  configRoutes(app, deps, guard);
  telemetryRoutes(app, deps, guard);
  adminRoutes(app, deps, guard);
  if (deps.rollouts) rolloutRoutes(app, deps, deps.rollouts, guard);
  if (deps.prediction) predictRoutes(app, deps, deps.prediction, guard);
  dashboardRoutes(app);
  return app;
}
