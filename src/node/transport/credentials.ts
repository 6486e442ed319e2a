import { readFileSync } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { RingLimitError } from '../../common/errors.js';

/** The longest bearer token, in characters. */
export const MAX_TOKEN_LENGTH = 512;
/** Tokens a node is configured with are at least this long (e.g. `openssl rand -hex 32`). */
export const MIN_NODE_TOKEN_LENGTH = 16;

/** Whether `value` is a bearer token: printable ASCII without spaces, `minLength` to MAX_TOKEN_LENGTH characters. */
export function isToken(value: unknown, minLength = 1): value is string {
  return typeof value === 'string' && value.length >= minLength && value.length <= MAX_TOKEN_LENGTH && /^[\x21-\x7e]+$/.test(value);
}

/** A node's TLS material, PEM: its certificate and key, and the CA that signs every node's and client's certificate. */
export interface NodeTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** A client's: the CA that signed the nodes' certificates, and (mutual TLS) its own certificate and key. */
export interface ClientTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads --tls-cert, --tls-key and --tls-ca, naming the flag that fails. */
export function readNodeTls(files: { cert?: string; key?: string; ca?: string }): NodeTls | undefined {
  const given = [files.cert, files.key, files.ca].filter((f) => f !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 3) throw new RingLimitError('INVALID_ARGUMENT', '--tls-cert, --tls-key and --tls-ca go together (mutual TLS on every gRPC port)');
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new RingLimitError('INVALID_ARGUMENT', `--${flag}: cannot read ${path}: ${(error as Error).message}`);
    }
  };
  return { cert: read('tls-cert', files.cert!), key: read('tls-key', files.key!), ca: read('tls-ca', files.ca!) };
}

/** The server side of every gRPC port: mutual TLS (client certificates required) when given, else plain text. */
export function serverCredentials(tls: NodeTls | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** A channel to a node: TLS with the client's certificate when given, else plain text. */
export function channelCredentials(tls: ClientTls | undefined): grpc.ChannelCredentials {
  if (tls === undefined) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null);
}

export const AUTHORIZATION_HEADER = 'authorization';

/**
 * Bearer tokens for the public API: each of `tokens` is accepted (several, so that one can
 * be rotated in before the old one is removed). Empty: no token asked.
 */
export class ApiTokens {
  private readonly accepted: Buffer[];

  constructor(tokens: readonly string[]) {
    this.accepted = tokens.map((t) => Buffer.from(t));
  }

  get required(): boolean {
    return this.accepted.length > 0;
  }

  /** Whether the call's metadata carries an accepted `authorization: Bearer <token>`. */
  allows(metadata: grpc.Metadata): boolean {
    const value = metadata.get(AUTHORIZATION_HEADER)[0];
    return this.allowsHeader(typeof value === 'string' ? value : undefined);
  }

  /**
   * Who a header's token is, for the logs: "token " and the first 8 hex digits of its SHA-256
   * (never the token itself); undefined when it is not accepted.
   */
  identify(value: string | undefined): string | undefined {
    if (this.accepted.length === 0 || !this.allowsHeader(value)) return undefined;
    return `token ${createHash('sha256').update(value!.slice('Bearer '.length)).digest('hex').slice(0, 8)}`;
  }

  /** The identity of a call's token (gRPC metadata); see identify(). */
  identifyCall(metadata: grpc.Metadata): string | undefined {
    const value = metadata.get(AUTHORIZATION_HEADER)[0];
    return this.identify(typeof value === 'string' ? value : undefined);
  }

  /** Whether an `authorization` header value (gRPC metadata or HTTP) is `Bearer <an accepted token>`. */
  allowsHeader(value: string | undefined): boolean {
    if (this.accepted.length === 0) return true;
    if (value === undefined || !value.startsWith('Bearer ')) return false;
    const offered = Buffer.from(value.slice('Bearer '.length));
    let ok = false;
    for (const token of this.accepted) ok = (token.length === offered.length && timingSafeEqual(token, offered)) || ok;
    return ok;
  }
}

/** The metadata a client sends with every call: its bearer token, if any. */
export function clientMetadata(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set(AUTHORIZATION_HEADER, `Bearer ${token}`);
  return metadata;
}
