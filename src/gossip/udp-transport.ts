import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { RingLimitError, invalidArgument } from '../common/errors.js';
import { formatAddress, parseIpAddress } from './address.js';
import type { PacketTransport } from './transport.js';

export interface UdpTransportOptions {
  readonly host: string;
  /** 0 picks a free port; read the result from `localAddress`. */
  readonly port: number;
  /** Bigger datagrams are not sent (received ones are passed up and dropped by the decoder). */
  readonly maxPacketBytes: number;
}

/** node:dgram adapter. */
export class UdpTransport implements PacketTransport {
  sendErrors = 0;
  private handler: ((bytes: Uint8Array, fromAddress: string) => void) | undefined;
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    readonly localAddress: string,
    private readonly maxPacketBytes: number,
  ) {
    socket.on('message', (msg, rinfo) => {
      if (this.closed) return; // oversize datagrams go up too: the receiver counts them
      this.handler?.(msg, formatAddress(rinfo.address, rinfo.port));
    });
    // Per-datagram errors (e.g. ICMP unreachable surfaced on Linux) must not kill the process.
    socket.on('error', () => {
      this.sendErrors++;
    });
  }

  static async bind(options: UdpTransportOptions): Promise<UdpTransport> {
    const family = isIP(options.host);
    if (family === 0) throw invalidArgument('host', `must be an IP literal to bind, got ${JSON.stringify(options.host)}`);
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw invalidArgument('port', `must be an integer in [0, 65535], got ${String(options.port)}`);
    }
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        socket.close();
        reject(new RingLimitError('UNAVAILABLE', `cannot bind UDP ${formatAddress(options.host, options.port)}: ${error.message}`, 'port'));
      };
      socket.once('error', onError);
      socket.bind(options.port, options.host, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    socket.unref();
    const bound = socket.address();
    return new UdpTransport(socket, formatAddress(bound.address, bound.port), options.maxPacketBytes);
  }

  send(bytes: Uint8Array, address: string): void {
    if (this.closed || bytes.length > this.maxPacketBytes) return;
    const target = parseIpAddress(address);
    if (target === undefined) {
      this.sendErrors++;
      return;
    }
    try {
      this.socket.send(bytes, target.port, target.host, (error) => {
        if (error) this.sendErrors++;
      });
    } catch {
      this.sendErrors++;
    }
  }

  onPacket(handler: (bytes: Uint8Array, fromAddress: string) => void): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
