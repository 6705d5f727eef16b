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

/**
 * The stored form of a secret the controller generated (a device, API or enrolment token: 256 random bits):
 * `sha256$<base64url>`. A slow KDF (scrypt, bcrypt, Argon2) protects secrets people choose, which can be guessed from a
 * list; nothing guesses among 2^256 values, however fast each guess, so a fast hash is as safe here, and a fleet of
 * 10,000 devices reconnecting at once is checked in milliseconds instead of minutes.
 */
export function hashSecret(secret: string): string {
  return `sha256$${createHash('sha256').update(secret, 'utf8').digest('base64url')}`;
}

/** Whether a stored hash is of an older kind (scrypt) to be replaced with `hashSecret`'s once it verified. */
export const needsRehash = (stored: string) => !stored.startsWith('sha256$');

// what earlier versions stored: scrypt N=2^14, r=8, p=1 (tens of milliseconds and 16 MiB per check)
const SCRYPT_N = 16_384;

/** The scrypt form earlier versions stored, `scrypt$N$salt$hash` (kept for the migration tests). */
export function legacyScryptHash(secret: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, 32, { N: SCRYPT_N, r: 8, p: 1 });
  return `scrypt$${SCRYPT_N}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/**
 * Checks a secret against its stored hash, in constant time for its length. A `sha256$` hash is checked at once; an
 * older `scrypt$` one on libuv's thread pool (the event loop does not stall for tens of milliseconds per device).
 */
export function verifySecret(secret: string, stored: string): Promise<boolean> {
  if (stored.startsWith('sha256$')) {
    const want = Buffer.from(stored.slice(7), 'base64url');
    const got = createHash('sha256').update(secret, 'utf8').digest();
    return Promise.resolve(want.length === got.length && timingSafeEqual(want, got));
  }
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
