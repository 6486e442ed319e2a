import { randomBytes } from 'node:crypto';
import type { Keyring } from '../../gossip/index.js';

/** Request and response header carrying the opener's hello and the receiver's answer. */
export const PEER_AUTH_HEADER = 'ringlimit-peer-auth';
/** Response header carrying the receiver's challenge: the opener's first frame must prove the key over it. */
export const PEER_CHALLENGE_HEADER = 'ringlimit-peer-challenge';
const LABEL = 'ringlimit-peer-auth-v2';
const NONCE_BYTES = 16;
const NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/;
const MAC_PATTERN = /^[A-Za-z0-9_-]{22}$/;

export interface PeerAuthComponents {
  /** The cluster key(s): the gossip keyring. Absent: members are told apart by membership alone. */
  keyring: Keyring | undefined;
  /** Whether `nodeId` is a current member whose advertised host is `ip` (used without a keyring). */
  isMember: (nodeId: string, ip: string) => boolean;
}

export interface PeerAuthInit {
  selfId: string;
}

/** What a stream this node opens sends, and what it expects back. */
export interface Hello {
  header: string | undefined;
  nonce: string;
}

/** A receiver's challenge on one stream, kept until the opener's first frame answers it. */
export interface Challenge {
  openerId: string;
  openerNonce: string;
  nonce: string;
}

export type Acceptance = { ok: true; answer: string | undefined; challenge: Challenge | undefined } | { ok: false; reason: string };

const newNonce = (): string => randomBytes(NONCE_BYTES).toString('base64url');

/**
 * Who may speak the peer protocol: both ends of the check, for every peer stream.
 *
 * With a cluster key, a mutual challenge–response bound to the stream:
 * 1. the opener's request headers carry its node id, a fresh nonce N₁ and
 *    HMAC(key, label | "hello" | its id | the address it dialled | N₁) — a stranger is
 *    refused here, before anything else;
 * 2. the receiver answers in its response headers with its own fresh nonce N₂ and
 *    HMAC(key, label | "answer" | its id | the opener's id | N₁ | N₂) — the opener hands
 *    on nothing from the stream unless this verifies;
 * 3. the opener's first frame is HMAC(key, label | "proof" | its id | the receiver's id |
 *    N₁ | N₂) — the receiver hands on no frame before it, and refuses the stream if it
 *    does not verify.
 * Each side answers a nonce the other just chose, so nothing captured from one stream
 * opens another (with no memory of old nonces, and whatever the clocks say), and the
 * signed ids and address bind it to these two nodes. A stream that fails is refused with
 * UNAUTHENTICATED and counted.
 *
 * Without a key, a stream is accepted only from a current member's node id and from the
 * host that member advertises: that stops strangers on other hosts, not a process on a
 * member's host that claims a member's id (docs/security.md).
 */
export class PeerAuth {
  /** The address this node answers on, as peers dial it (set once the server is bound). */
  selfAddress = '';

  constructor(
    private readonly components: PeerAuthComponents,
    private readonly init: PeerAuthInit,
  ) {}

  get keyed(): boolean {
    return this.components.keyring !== undefined;
  }

  hello(address: string): Hello {
    const nonce = newNonce();
    const keyring = this.components.keyring;
    if (keyring === undefined) return { header: undefined, nonce };
    const mac = keyring.mac(Buffer.from(`${LABEL}|hello|${this.init.selfId}|${address}|${nonce}`)).toString('base64url');
    return { header: `${nonce}.${mac}`, nonce };
  }

  /** The receiver's check of a new stream from `nodeId` at `ip`, with its hello header. */
  accept(nodeId: string, header: string | undefined, ip: string): Acceptance {
    const keyring = this.components.keyring;
    if (nodeId === '' || nodeId === this.init.selfId) return { ok: false, reason: 'no node id, or this node’s own' };
    if (keyring === undefined) {
      return this.components.isMember(nodeId, ip) ? { ok: true, answer: undefined, challenge: undefined } : { ok: false, reason: `${nodeId} at ${ip} is not a member` };
    }
    const parts = header?.split('.');
    if (parts?.length !== 2) return { ok: false, reason: 'no proof' };
    const [openerNonce, mac] = parts as [string, string];
    if (!NONCE_PATTERN.test(openerNonce) || !MAC_PATTERN.test(mac)) return { ok: false, reason: 'malformed proof' };
    if (!keyring.verify(Buffer.from(`${LABEL}|hello|${nodeId}|${this.selfAddress}|${openerNonce}`), Buffer.from(mac, 'base64url'))) return { ok: false, reason: 'wrong proof' };
    const challenge: Challenge = { openerId: nodeId, openerNonce, nonce: newNonce() };
    const answer = keyring.mac(Buffer.from(`${LABEL}|answer|${this.init.selfId}|${nodeId}|${openerNonce}|${challenge.nonce}`)).toString('base64url');
    return { ok: true, answer, challenge };
  }

  /**
   * The opener's check of the receiver's answer from `serverId`, dialled at `dialledHost`;
   * with it, the first frame the opener must send (its proof over the receiver's challenge).
   * Undefined when the answer fails. Without a key there is nothing to prove (an empty
   * proof, never sent), but the answerer must be a member advertising the host dialled, as
   * the receiver requires of an opener: its frames are judged as that member's.
   */
  answerChallenge(hello: Hello, answer: string | undefined, serverId: string | undefined, challenge: string | undefined, dialledHost: string): Buffer | undefined {
    const keyring = this.components.keyring;
    if (serverId === undefined || serverId === '' || serverId === this.init.selfId) return undefined;
    if (keyring === undefined) return this.components.isMember(serverId, dialledHost) ? Buffer.alloc(0) : undefined;
    if (answer === undefined || !MAC_PATTERN.test(answer) || challenge === undefined || !NONCE_PATTERN.test(challenge)) return undefined;
    if (!keyring.verify(Buffer.from(`${LABEL}|answer|${serverId}|${this.init.selfId}|${hello.nonce}|${challenge}`), Buffer.from(answer, 'base64url'))) return undefined;
    return keyring.mac(Buffer.from(`${LABEL}|proof|${this.init.selfId}|${serverId}|${hello.nonce}|${challenge}`));
  }

  /** The receiver's check of the opener's first frame. */
  verifyProof(challenge: Challenge, frame: Uint8Array): boolean {
    const keyring = this.components.keyring;
    if (keyring === undefined) return false;
    return keyring.verify(Buffer.from(`${LABEL}|proof|${challenge.openerId}|${this.init.selfId}|${challenge.openerNonce}|${challenge.nonce}`), frame);
  }
}

/** The host part of a gRPC peer string ("1.2.3.4:5678", "[::1]:5678", "ipv4:…"), IPv4-mapped IPv6 unwrapped. */
export function hostOfPeer(peer: string): string {
  const withoutScheme = peer.replace(/^ipv[46]:/, '');
  const host = withoutScheme.startsWith('[') ? withoutScheme.slice(1, withoutScheme.indexOf(']')) : withoutScheme.slice(0, withoutScheme.lastIndexOf(':'));
  return host.replace(/^::ffff:/, '');
}
