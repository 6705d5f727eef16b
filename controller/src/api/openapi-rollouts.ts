import { ConfigLayer, SignedReleaseManifest } from '@fleetwave/shared';
import { z } from 'zod';

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any', target: 'openapi-3.0' });
const bearer = [{ bearer: [] }];
const json = (s: z.ZodType) => ({ content: { 'application/json': { schema: schema(s) } } });
const errors = {
  '400': { description: 'invalid request (error.code, with issues naming line and field for YAML)' },
  '401': { description: 'no or invalid bearer token' },
  '403': { description: 'role not allowed' },
};
const path = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });
const PlanRequest = z.object({ yaml: z.string(), source: z.string().optional() });

/** The OpenAPI paths of releases, rollouts and desired configuration. */
export function rolloutPaths() {
  return {
    '/api/releases': {
      get: {
        summary: 'Registered releases (viewer)',
        security: bearer,
        responses: { '200': { description: 'releases' }, ...errors },
      },
      post: {
        summary: 'Register a signed release manifest, verified against the trusted keys (operator)',
        security: bearer,
        requestBody: json(SignedReleaseManifest),
        responses: {
          '200': { description: 'name, version, added' },
          '409': { description: 'a different manifest has this version' },
          ...errors,
        },
      },
    },
    '/api/releases/{name}/{version}/artifacts/{artifact}': {
      put: {
        summary:
          'Upload an artifact (application/octet-stream); refused unless its size and SHA-256 are the manifest’s (operator)',
        security: bearer,
        parameters: [path('name'), path('version'), path('artifact')],
        responses: { '200': { description: 'stored' }, ...errors },
      },
      get: {
        summary: 'Download an artifact, with Range requests (devices: HTTP Basic with their token; operators: bearer)',
        parameters: [path('name'), path('version'), path('artifact')],
        responses: {
          '200': { description: 'the artifact' },
          '206': { description: 'a range of it' },
          '416': { description: 'range not satisfiable' },
          ...errors,
        },
      },
    },
    '/api/rollouts/plan': {
      post: {
        summary: 'What a plan would do: waves with their devices (viewer)',
        security: bearer,
        requestBody: json(PlanRequest),
        responses: { '200': { description: 'the rollout as it would start' }, ...errors },
      },
    },
    '/api/rollouts': {
      get: {
        summary: 'Rollouts with their waves and counts per status (viewer)',
        security: bearer,
        responses: { '200': { description: 'rollouts' }, ...errors },
      },
      post: {
        summary: 'Apply a rollout plan (operator)',
        security: bearer,
        requestBody: json(PlanRequest),
        responses: { '201': { description: 'the rollout' }, '409': { description: 'active already' }, ...errors },
      },
    },
    '/api/rollouts/events': {
      get: {
        summary: 'Rollout events after a cursor; server-sent events with Accept: text/event-stream (viewer)',
        security: bearer,
        parameters: [
          { name: 'after', in: 'query', schema: { type: 'integer' } },
          { name: 'rollout', in: 'query', schema: { type: 'string' } },
        ],
        responses: { '200': { description: 'events' }, ...errors },
      },
    },
    '/api/rollouts/{id}': {
      get: {
        summary: 'One rollout; ?devices=1 lists each wave’s devices (viewer)',
        security: bearer,
        parameters: [path('id'), { name: 'devices', in: 'query', schema: { type: 'string' } }],
        responses: { '200': { description: 'the rollout' }, '404': { description: 'unknown' }, ...errors },
      },
    },
    '/api/rollouts/{id}/{command}': {
      post: {
        summary: 'pause, resume, approve ({wave}), abort or rollback (operator)',
        security: bearer,
        parameters: [
          path('id'),
          { ...path('command'), schema: { type: 'string', enum: ['pause', 'resume', 'approve', 'abort', 'rollback'] } },
        ],
        requestBody: json(z.object({ wave: z.number().int().optional() })),
        responses: {
          '200': { description: 'the rollout' },
          '409': { description: 'not allowed in its status' },
          ...errors,
        },
      },
    },
    '/api/config/layers': {
      get: {
        summary: 'Configuration layers (viewer)',
        security: bearer,
        responses: { '200': { description: 'layers' }, ...errors },
      },
      post: {
        summary: 'Apply a configuration layer (operator)',
        security: bearer,
        requestBody: json(ConfigLayer),
        responses: { '200': { description: 'changed devices' }, ...errors },
      },
    },
    '/api/config/diff': {
      post: {
        summary: 'Which devices a layer would change, field by field (viewer)',
        security: bearer,
        requestBody: json(ConfigLayer),
        responses: { '200': { description: 'devices' }, ...errors },
      },
    },
    '/api/config/layers/{name}': {
      delete: {
        summary: 'Remove a layer (operator)',
        security: bearer,
        parameters: [path('name')],
        responses: { '200': { description: 'changed devices' }, ...errors },
      },
    },
    '/api/config/layers/{name}/revert': {
      post: {
        summary: 'Revert a layer to its previous version (operator)',
        security: bearer,
        parameters: [path('name')],
        responses: { '200': { description: 'changed devices' }, ...errors },
      },
    },
    '/api/config/effective/{device}': {
      get: {
        summary: 'A device’s merged configuration and which layer set each field (viewer)',
        security: bearer,
        parameters: [path('device')],
        responses: { '200': { description: 'config and provenance' }, ...errors },
      },
    },
    '/api/config/status': {
      get: {
        summary: 'Per device: desired and applied version, lagging or rejected with the reason (viewer)',
        security: bearer,
        responses: { '200': { description: 'devices' }, ...errors },
      },
    },
    '/api/config/history': {
      get: {
        summary: 'Configuration history (viewer)',
        security: bearer,
        responses: { '200': { description: 'entries' }, ...errors },
      },
    },
  };
}

const ok = (description: string) => ({ '200': { description }, ...errors });
const FailureLabel = z.object({
  status: z.enum(['failed', 'replaced']).optional(),
  mode: z.string().optional(),
  at: z.number().int().optional(),
  note: z.string().optional(),
});

/** The OpenAPI paths of failure prediction and the dashboard. */
export function predictPaths() {
  return {
    '/api/predict': {
      get: {
        summary:
          "The risk model, the alert threshold, every device's score, failure labels, silent candidates (viewer)",
        security: bearer,
        responses: ok('model, threshold, scores, labels, candidates'),
      },
    },
    '/api/predict/score': {
      post: { summary: 'Score every device now (operator)', security: bearer, responses: ok('scores') },
    },
    '/api/predict/model': {
      put: {
        summary: 'Install a model written by `fleetwave predict train` and rescore (admin)',
        security: bearer,
        responses: ok('the installed model'),
      },
    },
    '/api/predict/learn': {
      post: {
        summary: "Train a model on the fleet's own labelled health history and use it (operator)",
        security: bearer,
        requestBody: json(z.object({ horizon: z.string().optional(), epochs: z.number().int().optional() })),
        responses: ok('model, scores'),
      },
    },
    '/api/devices/{id}/health': {
      get: {
        summary: "A device's health samples since `since` (epoch ms, default 7 days ago) and its risk score (viewer)",
        security: bearer,
        parameters: [path('id'), { name: 'since', in: 'query', required: false, schema: { type: 'integer' } }],
        responses: ok('samples, score'),
      },
    },
    '/api/devices/{id}/failure': {
      post: {
        summary: 'Label a device failed or replaced, with a mode (operator): what learning uses',
        security: bearer,
        parameters: [path('id')],
        requestBody: json(FailureLabel),
        responses: ok('labels of the device'),
      },
      delete: {
        summary: "Remove a device's failure label (operator)",
        security: bearer,
        parameters: [path('id')],
        responses: ok('removed'),
      },
    },
    '/ui/': {
      get: {
        summary: 'The operator dashboard (static; signs in with an API token)',
        responses: { '200': { description: 'HTML' } },
      },
    },
  };
}
