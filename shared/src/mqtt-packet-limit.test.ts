import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PacketSizeScanner } from './mqtt-packet-limit.js';

/** An MQTT packet with a body of `n` bytes: type byte, Remaining Length (variable byte integer), body. */
function packet(n: number, type = 0x30): Buffer {
  return Buffer.concat([header(n, type), Buffer.alloc(n, 7)]);
}

function header(n: number, type = 0x30): Buffer {
  const len: number[] = [];
  let x = n;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    len.push(b);
  } while (x > 0);
  return Buffer.from([type, ...len]);
}

/** Cuts bytes into pieces at the given points (a TCP stream delivers any split). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe('the MQTT packet size limit', () => {
  it('passes packets up to the limit and reports the first one over it, however the stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (sizes, cuts) => {
          const max = 2000;
          const stream = Buffer.concat(sizes.map((n) => packet(n)));
          const s = new PacketSizeScanner(max);
          let reported = 0;
          for (const piece of split(stream, cuts)) {
            reported = s.feed(piece);
            if (reported !== 0) break;
          }
          const first = sizes.find((n) => n > max);
          expect(reported).toBe(first ?? 0);
        },
      ),
    );
  });

  it('reports a 256 MB announcement from its header alone, and a Remaining Length of five bytes as malformed', () => {
    expect(new PacketSizeScanner(2 * 1024 * 1024).feed(header(256_000_000))).toBe(256_000_000);
    expect(new PacketSizeScanner(2 ** 30).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe(-1);
    expect(new PacketSizeScanner(10).feed(Buffer.from([0xc0, 0x00, 0xd0, 0x00]))).toBe(0); // PINGREQ, PINGRESP
  });
});
