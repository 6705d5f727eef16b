import { createHash, pbkdf2Sync, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

/**
 * A new secret: 32 random bytes, base64url, never starting with `-` (one in 64 would, and a command line then reads it
 * as an option: `--broker-password -x…` is refused as a missing argument). Drawing again costs no entropy worth naming.
 */
export function newSecret(): string {
  for (;;) {
    const s = randomBytes(32).toString('base64url');
    if (!s.startsWith('-')) return s;
  }
}
export const newId = (bytes = 6) => randomBytes(bytes).toString('hex');

// scrypt N=2^14, r=8, p=1: tens of milliseconds per check, 16 MiB of memory (the OWASP minimum for scrypt).
const N = 16_384;

/** A slow hash of a secret, `scrypt$N$salt$hash`. Only this is stored. */
export function hashSecret(secret: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, 32, { N, r: 8, p: 1 });
  return `scrypt$${N}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/**
 * Checks a secret against its stored hash. Asynchronous: scrypt runs on libuv's thread pool, so a fleet reconnecting
 * at once does not stall the broker's event loop for tens of milliseconds per device.
 */
export function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [alg, n, salt, hash] = stored.split('$');
  if (alg !== 'scrypt' || !n || !salt || !hash) return Promise.resolve(false);
  const want = Buffer.from(hash, 'base64');
  const opts = { N: Number(n), r: 8, p: 1, maxmem: 64 << 20 };
  return new Promise((resolve) =>
    scrypt(secret, Buffer.from(salt, 'base64'), want.length, opts, (err, got) =>
      resolve(!err && timingSafeEqual(want, got)),
    ),
  );
}

/** The Mosquitto 2 password-file hash (`$7$iterations$salt$hash`, PBKDF2-SHA512), for an external Mosquitto. */
export function mosquittoHash(secret: string, iterations = 101): string {
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(secret, salt, iterations, 64, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/**
 * Remembers secrets that verified, by SHA-256, for a while: a fleet reconnecting after a broker restart would
 * otherwise cost a slow hash per device. Nothing reversible is kept, and a revocation clears the entry.
 */
export class VerifiedCache {
  private readonly ok = new Map<string, number>();
  constructor(private readonly ttlMs = 10 * 60_000) {}

  private key(subject: string, secret: string): string {
    return `${subject}\u0000${createHash('sha256').update(secret).digest('hex')}`;
  }

  has(subject: string, secret: string, now: number): boolean {
    const t = this.ok.get(this.key(subject, secret));
    return t !== undefined && now - t < this.ttlMs;
  }

  add(subject: string, secret: string, now: number): void {
    if (this.ok.size > 100_000) this.ok.clear();
    this.ok.set(this.key(subject, secret), now);
  }

  forget(subject: string): void {
    for (const k of this.ok.keys()) if (k.startsWith(`${subject}\u0000`)) this.ok.delete(k);
  }
}
