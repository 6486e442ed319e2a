/** Datagram transport seam: UDP in production, MemoryNetwork in simulations. */
export interface PacketTransport {
  /** host:port this transport receives on (the bound port when 0 was asked for). */
  readonly localAddress: string;
  /** Fire-and-forget. Never throws: send errors are counted, like lost datagrams. */
  send(bytes: Uint8Array, address: string): void;
  /** Register the single receiver. `fromAddress` is the datagram's real source. */
  onPacket(handler: (bytes: Uint8Array, fromAddress: string) => void): void;
  close(): Promise<void>;
}
