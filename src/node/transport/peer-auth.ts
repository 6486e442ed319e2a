import { randomBytes } from 'node:crypto';
import type { Keyring } from '../../gossip/index.js';

/** Request and response header carrying the proofs. */
export const PEER_AUTH_HEADER = 'ringlimit-peer-auth';
const LABEL = 'ringlimit-peer-auth-v1';
const NONCE_BYTES = 16;
const NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/;
const MAC_PATTERN = /^[A-Za-z0-9_-]{22}$/;

export interface PeerAuthComponents {
  /** The cluster key(s): the gossip keyring. Absent: members are told apart by membership alone. */
  keyring: Keyring | undefined;
  /** Whether `nodeId` is a current member whose advertised host is `ip` (used without a keyring). */
  isMember: (nodeId: string, ip: string) => boolean;
  /** Wall clock, ms: the proofs carry a timestamp. */
  now: () => number;
}

export interface PeerAuthInit {
  selfId: string;
  /** A proof whose timestamp is further than this from the receiver's clock is refused. */
  maxClockSkewMs: number;
  /** Nonces remembered to refuse a replayed proof; more new streams than this within the skew window are refused. */
  maxRememberedNonces: number;
}

/** What a stream this node opens sends, and what it expects back. */
export interface Hello {
  header: string | undefined;
  nonce: string;
}

export type Acceptance = { ok: true; answer: string | undefined } | { ok: false; reason: string };

/**
 * Who may speak the peer protocol: both ends of the check, for every peer stream.
 *
 * With a cluster key, a stream carries the opener's node id and a proof —
 * HMAC(key, label | "client" | node id | the address it dialled | time | nonce) — and the
 * receiver answers with HMAC(key, label | "server" | its id | the opener's id | nonce)
 * before any frame: each side proves it holds the key, bound to this stream's nonce and to
 * the dialled node, so a captured proof cannot open another stream (nonces are remembered
 * for the skew window) or be used against another node. A stream that fails is refused
 * with UNAUTHENTICATED; frames that arrive on a stream whose answer is not verified are
 * dropped and counted.
 *
 * Without a key, a stream is accepted only from a current member's node id and from the
 * host that member advertises: that stops strangers on other hosts, not a process on a
 * member's host that claims a member's id (docs/security.md).
 */
export class PeerAuth {
  /** The address this node answers on, as peers dial it (set once the server is bound). */
  selfAddress = '';
  /** nonce → when it may be forgotten; insertion order is time order, so pruning stops at the first live one. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly components: PeerAuthComponents,
    private readonly init: PeerAuthInit,
  ) {}

  get keyed(): boolean {
    return this.components.keyring !== undefined;
  }

  hello(address: string): Hello {
    const nonce = randomBytes(NONCE_BYTES).toString('base64url');
    const keyring = this.components.keyring;
    if (keyring === undefined) return { header: undefined, nonce };
    const ts = Math.round(this.components.now());
    const mac = keyring.mac(Buffer.from(`${LABEL}|client|${this.init.selfId}|${address}|${ts}|${nonce}`)).toString('base64url');
    return { header: `${ts}.${nonce}.${mac}`, nonce };
  }

  /** The opener's check of the receiver's answer (always true without a key: there is nothing to check). */
  verifyAnswer(hello: Hello, answer: string | undefined, serverId: string | undefined): boolean {
    const keyring = this.components.keyring;
    if (keyring === undefined) return true;
    if (answer === undefined || !MAC_PATTERN.test(answer) || serverId === undefined) return false;
    return keyring.verify(Buffer.from(`${LABEL}|server|${serverId}|${this.init.selfId}|${hello.nonce}`), Buffer.from(answer, 'base64url'));
  }

  /** The receiver's check of a new stream from `nodeId` at `ip`, with its proof header. */
  accept(nodeId: string, header: string | undefined, ip: string): Acceptance {
    const keyring = this.components.keyring;
    if (nodeId === '' || nodeId === this.init.selfId) return { ok: false, reason: 'no node id, or this node’s own' };
    if (keyring === undefined) {
      return this.components.isMember(nodeId, ip) ? { ok: true, answer: undefined } : { ok: false, reason: `${nodeId} at ${ip} is not a member` };
    }
    const parts = header?.split('.');
    if (parts?.length !== 3) return { ok: false, reason: 'no proof' };
    const [tsText, nonce, mac] = parts as [string, string, string];
    const ts = Number(tsText);
    const now = this.components.now();
    if (!/^\d{1,16}$/.test(tsText) || Math.abs(now - ts) > this.init.maxClockSkewMs) return { ok: false, reason: 'proof too old or from a clock too far off' };
    if (!NONCE_PATTERN.test(nonce) || !MAC_PATTERN.test(mac)) return { ok: false, reason: 'malformed proof' };
    const signed = Buffer.from(`${LABEL}|client|${nodeId}|${this.selfAddress}|${ts}|${nonce}`);
    if (!keyring.verify(signed, Buffer.from(mac, 'base64url'))) return { ok: false, reason: 'wrong proof' };
    this.forgetExpired(now);
    if (this.seen.has(nonce)) return { ok: false, reason: 'replayed proof' };
    if (this.seen.size >= this.init.maxRememberedNonces) return { ok: false, reason: 'too many new streams' };
    this.seen.set(nonce, now + 2 * this.init.maxClockSkewMs);
    const answer = keyring.mac(Buffer.from(`${LABEL}|server|${this.init.selfId}|${nodeId}|${nonce}`)).toString('base64url');
    return { ok: true, answer };
  }

  private forgetExpired(now: number): void {
    for (const [nonce, until] of this.seen) {
      if (until > now) break;
      this.seen.delete(nonce);
    }
  }
}

/** The host part of a gRPC peer string ("1.2.3.4:5678", "[::1]:5678", "ipv4:…"), IPv4-mapped IPv6 unwrapped. */
export function hostOfPeer(peer: string): string {
  const withoutScheme = peer.replace(/^ipv[46]:/, '');
  const host = withoutScheme.startsWith('[') ? withoutScheme.slice(1, withoutScheme.indexOf(']')) : withoutScheme.slice(0, withoutScheme.lastIndexOf(':'));
  return host.replace(/^::ffff:/, '');
}
