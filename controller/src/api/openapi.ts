import {
  ApiTokenRequest,
  CertificateRequest,
  CertificateRevokeRequest,
  CleanRecord,
  DeviceAddRequest,
  DeviceUpdateRequest,
  EnrolmentTokenRequest,
  EnrolRequest,
  TelemetryQueryParams,
} from '@fleetwave/shared';
import { z } from 'zod';
import { predictPaths, rolloutPaths } from './openapi-rollouts.js';

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any', target: 'openapi-3.0' });
const bearer = [{ bearer: [] }];
const json = (s: z.ZodType) => ({ content: { 'application/json': { schema: schema(s) } } });
const errors = {
  '400': { description: 'invalid request (error.code E_SCHEMA, with issues)' },
  '401': { description: 'no or invalid bearer token' },
  '403': { description: 'role not allowed' },
};

/** The OpenAPI 3 document, generated from the shared schemas the handlers validate with. */
export function openApiDocument() {
  const query = schema(TelemetryQueryParams) as { properties: Record<string, unknown> };
  const params = Object.entries(query.properties).map(([name, s]) => ({ name, in: 'query', schema: s }));
  return {
    openapi: '3.0.3',
    info: { title: 'Fleetwave controller API', version: '0.1.0' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths: {
      '/api/devices': {
        get: {
          summary:
            'List devices (viewer): each with its risk score (when a model is loaded) and `health`, the headline figures of its newest health report (at, cpuTempC, memUsedPct, diskUsedPct, underVoltage, throttled)',
          security: bearer,
          responses: { '200': { description: 'devices' }, ...errors },
        },
        post: {
          summary: 'Register a device; the token is shown once (operator)',
          security: bearer,
          requestBody: json(DeviceAddRequest),
          responses: {
            '201': { description: 'device, token, agentConfig' },
            '409': { description: 'exists' },
            ...errors,
          },
        },
      },
      '/api/devices/{id}': {
        get: {
          summary: 'A device with backlog, health, missing sequences (viewer)',
          security: bearer,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'device' }, '404': { description: 'unknown' }, ...errors },
        },
        patch: {
          summary:
            "Replace a device's tags and/or hardware (operator); its effective configuration is recomputed. Answers the device and the fields that changed",
          security: bearer,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: json(DeviceUpdateRequest),
          responses: {
            '200': { description: 'device, changed' },
            '404': { description: 'unknown' },
            '409': { description: 'revoked' },
            ...errors,
          },
        },
      },
      '/api/devices/{id}/revoke': {
        post: {
          summary: 'Revoke a device and drop its session (operator)',
          security: bearer,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'revoked' }, ...errors },
        },
      },
      '/api/devices/{id}/certificate': {
        post: {
          summary:
            'Issue a client certificate from the fleet CA: for the CSR given (its key stays on the device), or with a key made here and returned once (operator)',
          security: bearer,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: json(CertificateRequest),
          responses: {
            '201': { description: 'certificate, key (without a CSR), ca, fingerprint, notAfter' },
            ...errors,
          },
        },
      },
      '/api/devices/{id}/certificates': {
        get: {
          summary: "A device's certificates, newest first (viewer)",
          security: bearer,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'certificates' }, ...errors },
        },
      },
      '/api/devices/{id}/certificates/revoke': {
        post: {
          summary: "Revoke one of a device's certificates (by fingerprint) or all, and drop its session (operator)",
          security: bearer,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: json(CertificateRevokeRequest),
          responses: { '200': { description: 'revoked, certificates' }, ...errors },
        },
      },
      '/api/enrolment-tokens': {
        post: {
          summary: 'Create a fleet enrolment token (admin)',
          security: bearer,
          requestBody: json(EnrolmentTokenRequest),
          responses: { '201': { description: 'token' }, ...errors },
        },
      },
      '/api/enrol': {
        post: {
          summary: 'A gateway registers itself with an enrolment token',
          requestBody: json(EnrolRequest),
          responses: { '201': { description: 'device, token, agentConfig' }, ...errors },
        },
      },
      '/api/telemetry': {
        get: {
          summary: 'Clean telemetry after a cursor (backend+)',
          security: bearer,
          parameters: params,
          responses: {
            '200': {
              description: 'records and next cursor',
              ...json(z.object({ records: z.array(CleanRecord), next: z.number() })),
            },
            ...errors,
          },
        },
      },
      '/api/telemetry/stream': {
        get: {
          summary: 'Clean telemetry as NDJSON or server-sent events, resuming from a cursor (backend+)',
          security: bearer,
          parameters: params,
          responses: {
            '200': {
              description: 'one CleanRecord per line / event',
              content: {
                'application/x-ndjson': { schema: schema(CleanRecord) },
                'text/event-stream': { schema: schema(CleanRecord) },
              },
            },
            ...errors,
          },
        },
      },
      '/api/tokens': {
        get: {
          summary: 'List API tokens (admin)',
          security: bearer,
          responses: { '200': { description: 'tokens' }, ...errors },
        },
        post: {
          summary: 'Create an API token; shown once (admin)',
          security: bearer,
          requestBody: json(ApiTokenRequest),
          responses: { '201': { description: 'token' }, ...errors },
        },
      },
      '/api/tokens/{id}/revoke': {
        post: {
          summary: 'Revoke an API token (admin)',
          security: bearer,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'revoked' }, ...errors },
        },
      },
      '/api/audit': {
        get: {
          summary: 'The audit log, newest first (admin)',
          security: bearer,
          responses: { '200': { description: 'entries' }, ...errors },
        },
      },
      '/metrics': {
        get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text exposition format' } } },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'ok' } } } },
      ...rolloutPaths(),
      ...predictPaths(),
    },
  };
}
