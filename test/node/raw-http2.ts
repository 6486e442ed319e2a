import { connect, type Socket } from 'node:net';
import { waitFor } from './helpers.js';

/** HTTP/2 frame types and codes this client speaks (RFC 9113). */
export const FRAME = { HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, GOAWAY: 0x7 } as const;
export const ERROR = { PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, REFUSED_STREAM: 0x7 } as const;
const FLAG = { ACK: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** An HPACK literal header field without indexing, new name, no Huffman (names and values under 127 bytes). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

/**
 * An HTTP/2 client written frame by frame, for what no library client does: open streams
 * regardless of the server's SETTINGS_MAX_CONCURRENT_STREAMS, acknowledging its SETTINGS
 * or not. It records every frame the server sends.
 */
export class RawHttp2Client {
  readonly frames: Frame[] = [];
  private buffered = Buffer.alloc(0);
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => void (this.closed = true));
  }

  /** Connects and sends the preface and an empty SETTINGS frame (not waiting for the server's). */
  static async connect(address: string, localAddress?: string): Promise<RawHttp2Client> {
    const at = address.lastIndexOf(':');
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)), ...(localAddress === undefined ? {} : { localAddress }) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawHttp2Client(socket);
    socket.write(PREFACE);
    client.send(FRAME.SETTINGS, 0, 0, Buffer.alloc(0));
    return client;
  }

  send(type: number, flags: number, stream: number, payload: Buffer): void {
    const header = Buffer.alloc(9);
    header.writeUIntBE(payload.length, 0, 3);
    header.writeUInt8(type, 3);
    header.writeUInt8(flags, 4);
    header.writeUInt32BE(stream, 5);
    this.socket.write(Buffer.concat([header, payload]));
  }

  /** Waits for the server's SETTINGS and acknowledges them, as a conforming client would before going on. */
  async acknowledgeSettings(): Promise<void> {
    await waitFor(() => this.frames.some((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0), 5_000, "the server's SETTINGS");
    this.send(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0));
  }

  /** Opens `count` gRPC calls to `path` at once (HEADERS only: their requests never come, so they stay open). */
  openCalls(count: number, path: string, headers: Record<string, string> = {}): void {
    const extra = Object.entries(headers).map(([name, value]) => literal(name, value));
    const block = Buffer.concat([literal(':method', 'POST'), literal(':scheme', 'http'), literal(':path', path), literal(':authority', 'raw'), literal('content-type', 'application/grpc'), literal('te', 'trailers'), ...extra]);
    for (let i = 0; i < count; i++) this.send(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, block);
  }

  /** The streams the server reset with `code`. */
  resets(code: number): number[] {
    return this.frames.filter((f) => f.type === FRAME.RST_STREAM && f.payload.readUInt32BE(0) === code).map((f) => f.stream);
  }

  /** The error code of the server's GOAWAY, if it sent one. */
  goAway(): number | undefined {
    const frame = this.frames.find((f) => f.type === FRAME.GOAWAY);
    return frame?.payload.readUInt32BE(4);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) return;
      this.frames.push({ type: this.buffered.readUInt8(3), flags: this.buffered.readUInt8(4), stream: this.buffered.readUInt32BE(5) & 0x7fffffff, payload: this.buffered.subarray(9, 9 + length) });
      this.buffered = this.buffered.subarray(9 + length);
    }
  }
}
