import type { Logger } from 'pino';
import type { Principal } from '../broker/acl.js';
import type { ApiTokenRecord, FleetStore, Role, SecretKind } from '../store/fleet-store.js';
import { hashSecret, mosquittoHash, needsRehash, newId, newSecret, verifySecret } from './secrets.js';

/** Writes an audit entry (Authenticator.audit: a failed write is logged, never thrown). */
export type AuditFn = (
  actor: string,
  action: string,
  target: string,
  outcome: 'ok' | 'denied' | 'error',
  details?: string,
) => Promise<void>;

export interface ApiCaller {
  actor: string;
  role: Role;
}

const ROLE_RANK: Record<Role, number> = { backend: 0, viewer: 1, operator: 2, admin: 3 };

/** viewer < operator < admin; backend credentials only read telemetry (MQTT clean topics and the HTTP stream). */
export function roleAllows(have: Role, need: Role): boolean {
  if (need === 'backend') return true; // reading clean telemetry: any authenticated caller
  if (have === 'backend') return false;
  return ROLE_RANK[have] >= ROLE_RANK[need];
}

/** `fwt_<id>_<secret>`: the id finds the record, the secret is checked against its hash. */
export function parseApiToken(token: string): { id: string; secret: string } | null {
  const m = /^fwt_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$/.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/**
 * The AWS IoT Device SDKs append their metrics to the MQTT username as a query part
 * (`gw-1?SDK=IoTDeviceSDK/JS&Platform=Unix&Metadata=(…)`); AWS IoT Core strips it, and so does the controller, before
 * the username is looked up. A device id never contains `?` (DeviceId), so nothing else changes.
 */
export function withoutSdkMetrics(username: string | undefined): string | undefined {
  if (username === undefined) return undefined;
  const q = username.indexOf('?');
  return q < 0 ? username : username.slice(0, q);
}

/**
 * Credentials: device tokens (MQTT), backend and operator API tokens (MQTT for backends, HTTP for all). Secrets are
 * stored only as hashes (SHA-256: they are 256 random bits, see hashSecret); every refusal is written to the audit log.
 */
export class Authenticator {
  constructor(
    private readonly store: FleetStore,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /** Writes an audit entry; a failed write is logged, never thrown (the action it records has happened). */
  async audit(
    actor: string,
    action: string,
    target: string,
    outcome: 'ok' | 'denied' | 'error',
    details = '',
  ): Promise<void> {
    try {
      await this.store.addAudit({ ts: this.now(), actor, action, target, outcome, details });
    } catch (err) {
      this.log.error({ err: (err as Error).message, actor, action, target, outcome }, 'audit entry not written');
    }
  }

  denied(p: Principal, action: string, target: string): void {
    const actor = p.kind === 'device' ? `device:${p.id}` : p.kind === 'backend' ? `backend:${p.name}` : 'controller';
    this.log.warn({ actor, action, target }, 'refused');
    void this.audit(actor, action, target, 'denied');
  }

  /**
   * Checks a secret against its stored hash; a hash of an older kind (scrypt) that verified is replaced by a SHA-256
   * one, so each secret costs the slow check once.
   */
  async verify(kind: SecretKind, id: string, secret: string, stored: string): Promise<boolean> {
    if (!(await verifySecret(secret, stored))) return false;
    if (needsRehash(stored)) {
      await this.store.rehashSecret(kind, id, stored, hashSecret(secret)).then(
        (done) => done && this.log.info({ kind, id }, 'secret hash migrated from scrypt to SHA-256'),
        (err) =>
          this.log.warn({ err: (err as Error).message, kind, id }, 'secret hash not migrated; checked again next time'),
      );
    }
    return true;
  }

  /** Refuses an MQTT CONNECT (logged and audited); resolves null. */
  async refuseMqtt(clientId: string, username: string | undefined, why: string): Promise<null> {
    this.log.warn({ clientId, username, why }, 'mqtt connect refused');
    await this.audit(username ? `mqtt:${username}` : 'mqtt:anonymous', 'mqtt.connect', clientId, 'denied', why);
    return null;
  }

  /**
   * The device a client certificate identifies (TLS listener with the fleet CA), or null (refused and audited): the
   * chain must verify (CA, validity), its CN must be a registered device that is not revoked and the client id, and
   * the certificate must be one the registry issued and did not revoke.
   */
  async certificate(
    clientId: string,
    peer: { authorized: boolean; error?: string; fingerprint?: string; cn?: string },
  ): Promise<Principal | null> {
    const who = peer.cn ?? 'unknown';
    const refuse = (why: string) => this.refuseMqtt(clientId, `cert:${who}`, why);
    if (!peer.authorized) return refuse(`certificate not trusted: ${peer.error ?? 'unverified'}`);
    if (!peer.cn || !peer.fingerprint) return refuse('certificate without a CN');
    const device = await this.store.getDevice(peer.cn);
    if (!device) return refuse('certificate CN is not a registered device');
    if (device.revokedAt !== null) return refuse('device revoked');
    if (clientId !== device.id) return refuse('client id must be the certificate CN');
    const cert = await this.store.getCertificate(peer.fingerprint.replaceAll(':', '').toLowerCase());
    if (!cert || cert.device !== device.id) return refuse('certificate not issued by this registry');
    if (cert.revokedAt !== null) return refuse('certificate revoked');
    return { kind: 'device', id: device.id };
  }

  /** The principal an MQTT CONNECT authenticates as, or null (refused and audited). */
  async mqtt(clientId: string, sent: string | undefined, password: string | undefined): Promise<Principal | null> {
    const username = withoutSdkMetrics(sent);
    const refuse = (why: string) => this.refuseMqtt(clientId, username, why);
    if (!username || !password) return refuse('no credentials');
    if (username === 'backend') {
      const caller = await this.apiToken(password);
      if (caller?.role !== 'backend') return refuse('not a backend token');
      if (!clientId.startsWith('backend-')) return refuse('a backend client id must start with backend-');
      return { kind: 'backend', name: caller.actor };
    }
    const device = await this.store.getDevice(username);
    if (!device) return refuse('unknown device');
    if (device.revokedAt !== null) return refuse('device revoked');
    if (clientId !== device.id) return refuse('client id must be the device id');
    if (!(await this.verify('device', device.id, password, device.tokenHash))) return refuse('wrong token');
    // revoked while an older (scrypt) hash was being checked?
    if (needsRehash(device.tokenHash) && (await this.store.getDevice(device.id))?.revokedAt !== null) {
      return refuse('device revoked');
    }
    return { kind: 'device', id: device.id };
  }

  /** The caller an API token authenticates, or null. */
  async apiToken(token: string): Promise<ApiCaller | null> {
    const parsed = parseApiToken(token);
    if (!parsed) return null;
    const record = await this.store.getApiToken(parsed.id);
    if (!record || record.revokedAt !== null) return null;
    if (!(await this.verify('api', record.id, parsed.secret, record.hash))) return null;
    if (needsRehash(record.hash) && (await this.store.getApiToken(record.id))?.revokedAt !== null) return null;
    return { actor: record.name, role: record.role };
  }

  /** New credentials for a device: the token is shown once; only its hashes are stored. */
  deviceCredentials(): { token: string; tokenHash: string; mosquittoHash: string } {
    const token = newSecret();
    return { token, tokenHash: hashSecret(token), mosquittoHash: mosquittoHash(token) };
  }

  async createApiToken(name: string, role: Role): Promise<{ token: string; record: ApiTokenRecord }> {
    const id = newId();
    const secret = newSecret();
    const record: ApiTokenRecord = { id, name, role, hash: hashSecret(secret), createdAt: this.now(), revokedAt: null };
    await this.store.addApiToken(record);
    return { token: `fwt_${id}_${secret}`, record };
  }
}
