import { invalidArgument } from '../../common/errors.js';
import { MAX_BATCH_ITEMS } from '../api/backend.js';
import { isToken, type ClientTls } from '../transport/credentials.js';

export interface ClientOptions {
  /** gRPC addresses of any nodes of the cluster: host:port, or unix:/absolute/path for a node on this host's Unix socket. */
  nodes: string[];
  /** Deadline of one request on one node; past it the request is retried on the next node. */
  timeoutMs: number;
  /** Requests per stream message. */
  maxBatchSize: number;
  /**
   * Messages awaiting answers, shared by the nodes that have some in flight (each may
   * always have one); past a node's share, new requests gather into its next message
   * (adaptive batching, see AdaptiveBatcher).
   */
  maxFramesInFlight: number;
  /** Requests that go out at once, mid-turn, while their node has room in the window. */
  eagerBatchSize: number;
  /** Requests queued or awaiting an answer at once. */
  maxPending: number;
  /** Send to nodes[0] first (fail over in list order); default: start at a random node. */
  preferFirst: boolean;
  /** After a node's stream breaks, how long before it is tried again. */
  reconnectBackoffMs: number;
  /**
   * Learn the owners from the nodes (Members RPC) and send each request straight to its
   * key's owner. When false, each request goes to a configured node, which forwards it (one more hop).
   */
  ringAware: boolean;
  /** How often a ring-aware client asks for the owners. */
  ringRefreshMs: number;
  /** TLS to nodes that serve it: the CA that signed them and, for their mutual TLS, this client's certificate and key. */
  tls: ClientTls | undefined;
  /** A bearer token the nodes accept (sent as `authorization: Bearer <token>`). */
  token: string | undefined;
}

export const clientDefaults: Omit<ClientOptions, 'nodes'> = {
  timeoutMs: 2_000,
  maxBatchSize: 1_000,
  maxFramesInFlight: 4,
  eagerBatchSize: 16,
  maxPending: 100_000,
  preferFirst: false,
  reconnectBackoffMs: 200,
  ringAware: true,
  ringRefreshMs: 1_000,
  tls: undefined,
  token: undefined,
};

/** A port number as an address writes it: 1–65535. */
const isPort = (digits: string): boolean => {
  const port = Number(digits);
  return port >= 1 && port <= 65_535;
};

/**
 * A node's gRPC address as the client takes it: host:port, the host a name, an IPv4 address or
 * a bracketed IPv6 one. Nothing grpc-js would read as another scheme (`unix:`, `dns:`): a node's
 * answer names owners in this form, and must not send the client, token and all, elsewhere.
 */
export const isNodeAddress = (value: unknown): value is string => {
  if (typeof value !== 'string') return false;
  const match = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._-]{1,253}):(\d{1,5})$/.exec(value);
  return match !== null && isPort(match[1]!);
};

/** The longest Unix socket path the client takes (the kernel's sun_path holds 108 bytes with its terminator, macOS's 104). */
const MAX_SOCKET_PATH_BYTES = 103;

/** An address the caller configures: host:port, or a Unix socket on this host by absolute path (never taken from a node's answer). */
const isConfiguredAddress = (value: unknown): value is string => {
  if (isNodeAddress(value)) return true;
  if (typeof value !== 'string' || !/^unix:\/(?!\/)\S+$/.test(value)) return false;
  return Buffer.byteLength(value.slice('unix:'.length)) <= MAX_SOCKET_PATH_BYTES;
};

/** The options with their defaults, or INVALID_ARGUMENT naming the first bad one. */
export function resolveClientOptions(options: Partial<ClientOptions> & { nodes: string[] }): ClientOptions {
  const o: ClientOptions = { ...clientDefaults, ...options };
  if (!Array.isArray(o.nodes) || o.nodes.length === 0 || !o.nodes.every(isConfiguredAddress)) {
    throw invalidArgument('nodes', `must be a non-empty list of host:port or unix:/path, got ${JSON.stringify(o.nodes)}`);
  }
  const range = (name: 'timeoutMs' | 'maxBatchSize' | 'maxFramesInFlight' | 'eagerBatchSize' | 'maxPending' | 'reconnectBackoffMs' | 'ringRefreshMs', min: number, max: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !(v >= min && v <= max)) throw invalidArgument(name, `must be a number from ${min} to ${max}, got ${String(v)}`);
  };
  range('timeoutMs', 1, 600_000);
  range('maxBatchSize', 1, MAX_BATCH_ITEMS);
  range('maxFramesInFlight', 1, 64);
  range('eagerBatchSize', 1, MAX_BATCH_ITEMS);
  range('maxPending', 1, 10_000_000);
  range('reconnectBackoffMs', 0, 60_000);
  range('ringRefreshMs', 50, 600_000);
  if (typeof o.ringAware !== 'boolean') throw invalidArgument('ringAware', 'must be a boolean');
  if (o.tls !== undefined && (!Buffer.isBuffer(o.tls.ca) || (o.tls.cert === undefined) !== (o.tls.key === undefined))) {
    throw invalidArgument('tls', 'must have ca, and cert with key or neither, as PEM buffers');
  }
  if (o.token !== undefined && !isToken(o.token)) throw invalidArgument('token', 'must be printable characters without spaces');
  return o;
}
