/**
 * The one catalogue of coded errors. `transient` says whether retrying the same operation later can succeed;
 * retry and rollback decisions branch on it, never on message text (docs/STYLE.md, convention 6).
 */
export const errorCatalogue = {
  E_PAYLOAD_TOO_LARGE: { transient: false, summary: 'payload exceeds the size limit' },
  E_PAYLOAD_ENCODING: { transient: false, summary: 'payload is not valid UTF-8' },
  E_PAYLOAD_JSON: { transient: false, summary: 'payload is not valid JSON' },
  E_SCHEMA: { transient: false, summary: 'value does not match the schema' },
  E_TOPIC_ROOT: { transient: false, summary: 'topic is not under the configured root' },
  E_TOPIC_SEGMENT: { transient: false, summary: 'topic has an empty, wildcard or invalid segment' },
  E_TOPIC_KIND: { transient: false, summary: 'topic names an unknown message kind' },
  E_TOPIC_DEVICE: { transient: false, summary: 'topic names an invalid device id' },
  E_TOPIC_UNMAPPED: { transient: false, summary: 'topic matches no configured stream pattern' },
  E_READING_VALUE: { transient: false, summary: 'reading value is not a finite number' },
  E_READING_TIMESTAMP: { transient: false, summary: 'reading timestamp is invalid or too far from now' },
  E_MANIFEST_SIGNATURE: { transient: false, summary: 'manifest signature does not verify' },
  E_MANIFEST_UNTRUSTED_KEY: { transient: false, summary: 'manifest is signed with a key that is not trusted' },
  E_MANIFEST_EXPIRED: { transient: false, summary: 'manifest has expired' },
  E_MANIFEST_UNSIGNED: { transient: false, summary: 'manifest carries no signature' },
  E_KEY_INVALID: { transient: false, summary: 'key is not a valid Ed25519 key' },
  E_JOB_TRANSITION: { transient: false, summary: 'job execution status change is not allowed' },
  E_CONFIG_INVALID: { transient: false, summary: 'configuration is invalid' },
  E_CONFIG_READ: { transient: false, summary: 'configuration file cannot be read' },
  E_OUTBOX_FULL: { transient: true, summary: 'outbox is full and refuses new input' },
  E_OUTBOX_CLOSED: { transient: true, summary: 'outbox is closed' },
  E_STORAGE_FULL: {
    transient: true,
    summary: 'the data directory is full: new readings are refused while the agent drains what it holds',
  },
  E_UPLINK_DISCONNECTED: { transient: true, summary: 'uplink is not connected' },
  E_AUTH: { transient: false, summary: 'credentials are missing or wrong' },
  E_FORBIDDEN: { transient: false, summary: 'the credentials do not allow this' },
  E_DEVICE_EXISTS: { transient: false, summary: 'a device with this id is already registered' },
  E_DEVICE_UNKNOWN: { transient: false, summary: 'no device with this id is registered' },
  E_DEVICE_REVOKED: { transient: false, summary: 'the device has been revoked' },
  E_NOT_FOUND: { transient: false, summary: 'no such resource' },
  E_PORT_IN_USE: { transient: false, summary: 'a port the controller should listen on is taken' },
  E_UPDATE_HARDWARE: { transient: false, summary: 'the release does not support this device hardware' },
  E_UPDATE_DOWNGRADE: {
    transient: false,
    summary: 'the release is older than the installed one and does not allow a downgrade',
  },
  E_UPDATE_INSTALLER: { transient: false, summary: 'no installer on this device handles the release install type' },
  E_UPDATE_BUSY: { transient: true, summary: 'another update is in progress on this device' },
  E_UPDATE_ATTEMPTS: { transient: false, summary: 'too many attempts at the same update (reboot-loop guard)' },
  E_DOWNLOAD: { transient: true, summary: 'artifact download failed' },
  E_DOWNLOAD_GAVE_UP: { transient: false, summary: 'artifact download failed after every retry' },
  E_DISK_FULL: { transient: false, summary: 'not enough free space for the artifact' },
  E_ARTIFACT_SIZE: { transient: false, summary: 'artifact size differs from the manifest' },
  E_ARTIFACT_HASH: { transient: false, summary: 'artifact SHA-256 differs from the manifest' },
  E_ARCHIVE_UNSAFE: {
    transient: false,
    summary: 'archive entry is unsafe (path traversal, link out, device file, too large)',
  },
  E_INSTALL: { transient: false, summary: 'the installer failed' },
  E_HEALTH_CHECK: { transient: false, summary: 'the new version failed its health check' },
  E_RELEASE_UNKNOWN: { transient: false, summary: 'no such release is registered' },
  E_RELEASE_EXISTS: { transient: false, summary: 'a different release with this name and version is registered' },
  E_ROLLOUT_EXISTS: { transient: false, summary: 'a rollout with this name is already active' },
  E_ROLLOUT_STATE: { transient: false, summary: 'the rollout is not in a state that allows this' },
  E_ROLLOUT_BACKEND: { transient: false, summary: 'the jobs backend cannot run this plan' },
  E_DATABASE_URL: { transient: false, summary: 'the database URL is not one the controller can use' },
  E_DATABASE_UNREACHABLE: { transient: true, summary: 'the database does not answer' },
  E_CA_MISSING: { transient: false, summary: 'no fleet CA in the data dir: run fleetwave ca init (or ca import)' },
  E_CERT_INVALID: { transient: false, summary: 'a certificate, key or CSR was refused' },
  E_BROKER_UNREACHABLE: { transient: true, summary: 'the external broker (NATS) does not answer' },
  E_DATABASE_SCHEMA: { transient: false, summary: 'the database is on a schema this controller cannot use' },
  E_DATABASE_CORRUPT: { transient: false, summary: 'a stored document does not match its schema' },
  E_DATABASE_NOT_EMPTY: { transient: false, summary: 'the target database already holds controller state' },
  E_NOT_LEADER: { transient: true, summary: 'this controller replica does not hold the leader lease (now)' },
  E_CONFLICT: { transient: true, summary: 'another writer changed it meanwhile: read it again and retry' },
  E_CONTROLLER_UNREACHABLE: { transient: true, summary: 'the controller does not answer at the URL the CLI uses' },
  E_CONTROLLER_RESPONSE: { transient: false, summary: 'the controller answered with an error this CLI does not know' },
} as const satisfies Record<string, { transient: boolean; summary: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/** Whether a string (from the wire: an API error body, say) is a code of the catalogue. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorCatalogue, code);
}

export class FleetwaveError extends Error {
  readonly code: ErrorCode;
  readonly transient: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message?: string, details: Record<string, unknown> = {}) {
    super(message ?? errorCatalogue[code].summary);
    this.name = 'FleetwaveError';
    this.code = code;
    this.transient = errorCatalogue[code].transient;
    this.details = Object.freeze({ ...details });
  }
}

export function isFleetwaveError(err: unknown, code?: ErrorCode): err is FleetwaveError {
  return err instanceof FleetwaveError && (code === undefined || err.code === code);
}
