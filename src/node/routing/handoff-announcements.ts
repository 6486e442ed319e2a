import type { ViewMember } from './view-members.js';

/**
 * Which ring (version) each member has announced it pushed everything for: from its gossip
 * meta (META_HANDED), and as told directly (a HandoffDone frame, which arrives before gossip
 * spreads the meta). One entry per member of each kind.
 */
export class HandoffAnnouncements {
  private byGossip = new Map<string, string>();
  private readonly direct = new Map<string, string>();

  /** Whether `nodeId` announced `version` either way. */
  has(nodeId: string, version: string): boolean {
    return this.byGossip.get(nodeId) === version || this.direct.get(nodeId) === version;
  }

  /** `nodeId` told us directly; whether that is news. */
  told(nodeId: string, version: string): boolean {
    if (this.direct.get(nodeId) === version) return false;
    this.direct.set(nodeId, version);
    return true;
  }

  /** Re-reads every member's announcement from gossip, forgets members gone; whether one changed. */
  read(members: readonly ViewMember[], addresses: ReadonlyMap<string, string>): boolean {
    for (const nodeId of this.direct.keys()) if (!addresses.has(nodeId)) this.direct.delete(nodeId);
    const handed = new Map<string, string>();
    let changed = false;
    for (const m of members) {
      if (m.handed === undefined) continue;
      handed.set(m.nodeId, m.handed);
      if (this.byGossip.get(m.nodeId) !== m.handed) changed = true;
    }
    if (handed.size !== this.byGossip.size) changed = true;
    this.byGossip = handed;
    return changed;
  }
}
