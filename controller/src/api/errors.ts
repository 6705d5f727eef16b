import { type ErrorCode, FleetwaveError } from '@fleetwave/shared';

const STATUS: Partial<Record<ErrorCode, number>> = {
  E_SCHEMA: 400,
  E_PAYLOAD_JSON: 400,
  E_PAYLOAD_TOO_LARGE: 413,
  E_PAYLOAD_ENCODING: 400,
  E_CONFIG_INVALID: 400,
  E_AUTH: 401,
  E_FORBIDDEN: 403,
  E_NOT_FOUND: 404,
  E_DEVICE_UNKNOWN: 404,
  E_DEVICE_EXISTS: 409,
  E_DEVICE_REVOKED: 409,
  E_RELEASE_UNKNOWN: 404,
  E_RELEASE_EXISTS: 409,
  E_ROLLOUT_EXISTS: 409,
  E_ROLLOUT_STATE: 409,
  E_ROLLOUT_BACKEND: 422,
  E_MANIFEST_SIGNATURE: 400,
  E_MANIFEST_UNTRUSTED_KEY: 400,
  E_MANIFEST_EXPIRED: 400,
  E_MANIFEST_UNSIGNED: 400,
  E_ARTIFACT_SIZE: 400,
  E_ARTIFACT_HASH: 400,
  E_KEY_INVALID: 400,
  E_CONFLICT: 409,
  E_DATABASE_CORRUPT: 500,
};

export function httpStatus(err: FleetwaveError): number {
  return STATUS[err.code] ?? (err.transient ? 503 : 500);
}

/** Every API error body: `{ error: { code, message, transient, issues? } }`. */
export function errorBody(err: unknown): { status: number; body: unknown } {
  if (err instanceof FleetwaveError) {
    return {
      status: httpStatus(err),
      body: { error: { code: err.code, message: err.message, transient: err.transient, ...err.details } },
    };
  }
  const e = err as { statusCode?: number; message?: string; code?: string };
  if (e.statusCode && e.statusCode < 500) {
    // fastify's own refusals (a body over the limit, an unsupported content type, a malformed URL) in the API's terms
    const code = e.statusCode === 413 ? 'E_PAYLOAD_TOO_LARGE' : e.statusCode === 404 ? 'E_NOT_FOUND' : 'E_SCHEMA';
    return { status: e.statusCode, body: { error: { code, message: e.message, transient: false } } };
  }
  return { status: 500, body: { error: { code: 'E_INTERNAL', message: 'internal error', transient: true } } };
}
