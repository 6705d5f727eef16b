/**
 * Follows the MQTT packet boundaries of a byte stream (fixed header: one type byte, then the Remaining Length as a
 * variable byte integer of 1–4 bytes [MQTT-2.2.3]) and reports the first packet announced larger than `max` bytes,
 * before its body arrives: a broker can close the connection instead of buffering, say, 256 MB for one message.
 */
export class PacketSizeScanner {
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private left = 0;

  constructor(private readonly max: number) {}

  /** Feeds bytes; returns the announced size of the first packet over the limit (or a malformed length: -1), else 0. */
  feed(buf: Uint8Array): number {
    let i = 0;
    while (i < buf.length) {
      if (this.state === 'type') {
        i++;
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
      } else if (this.state === 'length') {
        const b = buf[i++]!;
        this.length += (b & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        this.lengthBytes++;
        if (this.length > this.max) return this.length;
        if (b & 0x80) {
          if (this.lengthBytes === 4) return -1; // [MQTT-1.5.5]: at most four bytes
          continue;
        }
        this.left = this.length;
        this.state = this.left === 0 ? 'type' : 'body';
      } else {
        const take = Math.min(this.left, buf.length - i);
        i += take;
        this.left -= take;
        if (this.left === 0) this.state = 'type';
      }
    }
    return 0;
  }
}

/** A readable side as aedes reads it (`read()` after 'readable'). */
interface ReadableConn {
  read(size?: number | null): unknown;
  destroy(err?: Error): unknown;
}

/**
 * Limits the packets an MQTT connection may send to `max` bytes of Remaining Length: every chunk aedes reads is
 * scanned first, and a packet announced larger closes the connection before its body is buffered. `onRefused` says
 * why (for the log). MQTT 3.1.1 has no way to tell the client; MQTT 5 would send DISCONNECT 0x95.
 */
export function limitPacketSize(conn: ReadableConn, max: number, onRefused: (announced: number) => void): void {
  const scanner = new PacketSizeScanner(max);
  const read = conn.read.bind(conn);
  let refused = false;
  conn.read = (size?: number | null) => {
    if (refused) return null;
    const buf = read(size);
    if (buf instanceof Uint8Array) {
      const over = scanner.feed(buf);
      if (over !== 0) {
        refused = true;
        onRefused(over);
        conn.destroy();
        return null;
      }
    }
    return buf;
  };
}
