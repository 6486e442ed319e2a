interface Place {
  readonly host: string;
  readonly peer: string;
  readonly sinceMs: number;
}

/**
 * The calls waiting for room on the caller ledger (CallerLedger.openCall), oldest first per
 * host; as room frees, hosts take turns (the host served last goes to the back), so one host
 * with many waiting calls does not hold the others back. Only HTTP/2 streams wait here, their
 * requests unread: what the caller sent stays in its own stack, held by flow control.
 */
export class CallQueue<C> {
  /** Per host, its waiting calls in arrival order (a Map keeps insertion order). */
  private readonly hosts = new Map<string, Map<C, Place>>();
  private readonly places = new Map<C, Place>();

  get size(): number {
    return this.places.size;
  }

  add(call: C, host: string, peer: string, nowMs: number): void {
    const place = { host, peer, sinceMs: nowMs };
    this.places.set(call, place);
    let calls = this.hosts.get(host);
    if (calls === undefined) {
      calls = new Map();
      this.hosts.set(host, calls);
    }
    calls.set(call, place);
  }

  /** Takes a call out (it ended while waiting); false when it was not waiting. */
  remove(call: C): boolean {
    const place = this.places.get(call);
    if (place === undefined) return false;
    this.places.delete(call);
    const calls = this.hosts.get(place.host)!;
    calls.delete(call);
    if (calls.size === 0) this.hosts.delete(place.host);
    return true;
  }

  /**
   * Takes out the next call that has room, hosts in turn: the oldest call of the first host
   * with room whose connection has room too. Undefined when none has.
   */
  next(hostHasRoom: (host: string) => boolean, connectionHasRoom: (peer: string) => boolean): { call: C; host: string; peer: string } | undefined {
    for (const [host, calls] of this.hosts) {
      if (!hostHasRoom(host)) continue;
      for (const [call, place] of calls) {
        if (!connectionHasRoom(place.peer)) continue;
        this.remove(call);
        // Served: to the back of the turn.
        const rest = this.hosts.get(host);
        if (rest !== undefined) {
          this.hosts.delete(host);
          this.hosts.set(host, rest);
        }
        return { call, host, peer: place.peer };
      }
    }
    return undefined;
  }

  /** Takes out the calls that have waited since before `beforeMs`. */
  takeWaitingSince(beforeMs: number): C[] {
    const stale: C[] = [];
    for (const calls of this.hosts.values()) {
      for (const [call, place] of calls) {
        if (place.sinceMs >= beforeMs) break; // the rest of this host's calls came later
        stale.push(call);
      }
    }
    for (const call of stale) this.remove(call);
    return stale;
  }
}
