import { FleetwaveError } from '../errors.js';

/** Largest magnitude the arithmetic zigzag below keeps exact (2x + 1 stays below 2^53). */
export const SVARINT_LIMIT = 2 ** 51;

/** A growable byte buffer for the v2 encoder: unsigned LEB128 varints, zigzag varints, strings, raw bytes. */
export class ByteWriter {
  private buf = Buffer.allocUnsafe(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.length++] = b;
  }

  /** Unsigned LEB128 of an integer 0 ≤ n < 2^53 (arithmetic, not 32-bit operators, so it stays exact). */
  varint(n: number): void {
    this.room(8);
    while (n >= 128) {
      this.buf[this.length++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buf[this.length++] = n;
  }

  /** Zigzag (0, -1, 1, -2, … → 0, 1, 2, 3, …) then varint; |x| < 2^51. */
  svarint(x: number): void {
    this.varint(x >= 0 ? 2 * x : -2 * x - 1);
  }

  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.varint(n);
    this.room(n);
    this.length += this.buf.write(s, this.length, 'utf8');
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const bad = (what: string) => new FleetwaveError('E_PAYLOAD_ENCODING', `telemetry v2: ${what}`);

/** Reads what ByteWriter wrote; every read is bounds-checked and throws E_PAYLOAD_ENCODING on malformed input. */
export class ByteReader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw bad('truncated');
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      n += (b & 127) * scale;
      if (b < 128) {
        if (n > Number.MAX_SAFE_INTEGER) throw bad('varint out of range');
        return n;
      }
      scale *= 128;
    }
    throw bad('varint longer than 8 bytes');
  }

  svarint(): number {
    const z = this.varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  string(max: number): string {
    const n = this.varint();
    if (n > max) throw bad(`string of ${n} bytes (at most ${max})`);
    const b = this.take(n);
    try {
      return utf8.decode(b);
    } catch {
      throw bad('string is not UTF-8');
    }
  }

  take(n: number): Uint8Array {
    if (n > this.remaining) throw bad('truncated');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

export const encodingError = bad;
