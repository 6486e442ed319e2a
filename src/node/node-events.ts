import type { Member } from '../gossip/index.js';
import type { Decision } from '../limiter/types.js';

/** What a node tells its listeners (node.on(...)). */
export interface NodeEvents {
  /** Membership changed: a member joined, left, failed or updated. */
  membership: [event: 'join' | 'leave' | 'fail' | 'update', member: Member];
  /** The ring was rebuilt: key ownership changed. */
  ownership: [owners: string[]];
  /** Something went wrong that the node survives (a periodic snapshot failed to write). */
  warning: [error: Error];
  /** Other policies are in force (set here, from the file, or from another node). */
  policies: [version: number, digest: string];
  /** An operator inspected, reset or set a key through this node (`by`: who asked, as the caller said or the API authenticated). */
  admin: [record: AdminRecord];
}

/** One operator's operation on a key, for the logs. */
export interface AdminRecord {
  op: 'inspect' | 'reset' | 'set';
  action: string;
  key: string;
  /** What Set put (undefined for inspect and reset). */
  remaining: number | undefined;
  by: string;
  /** The key as it is after the operation. */
  result: Decision;
}

/** Who asks, for the logs (the APIs fill it from the caller's authenticated identity). */
export interface AdminOptions {
  by?: string;
}
