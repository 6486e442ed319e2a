/** Sends a frame back on the stream the request came in on. */
export type Reply = (frame: Uint8Array) => void;

export type FrameHandler = (frame: Uint8Array, reply: Reply, fromNodeId: string) => void;

/**
 * How nodes exchange peer frames. One long-lived stream per peer pair and direction;
 * frames are opaque bytes here (see ../wire). Behind an interface so tests and the chaos
 * harness can wrap it with faults.
 */
export interface PeerTransport {
  /**
   * Queues a frame for the node at `address` (its gRPC host:port). Returns false when it
   * cannot be queued (the peer is known down, or its buffer is over its bound): the
   * caller fails over at once instead of waiting for a deadline.
   */
  send(address: string, frame: Uint8Array): boolean;
  /** Installs the handler for every frame that arrives, in either direction. */
  onFrame(handler: FrameHandler): void;
  /** Called when the stream to `address` breaks; requests in flight to it will not be answered. */
  onPeerDown(handler: (address: string) => void): void;
  /** Drops the stream to a peer that left. */
  disconnect(address: string): void;
  close(): Promise<void>;
}
