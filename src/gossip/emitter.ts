import type { MembershipEventName, MembershipEvents } from './types.js';

type Listeners = { [E in MembershipEventName]: Set<MembershipEvents[E]> };

/**
 * Typed event fan-out. A throwing listener must not break the protocol loop,
 * so its error is rethrown on a microtask: it surfaces like any uncaught error.
 */
export class MembershipEmitter {
  private readonly listeners: Listeners = {
    join: new Set(),
    leave: new Set(),
    fail: new Set(),
    update: new Set(),
  };

  on<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): () => void {
    this.listeners[event].add(listener);
    return () => this.off(event, listener);
  }

  off<E extends MembershipEventName>(event: E, listener: MembershipEvents[E]): void {
    this.listeners[event].delete(listener);
  }

  emit<E extends MembershipEventName>(event: E, ...args: Parameters<MembershipEvents[E]>): void {
    for (const listener of this.listeners[event]) {
      try {
        (listener as (...a: Parameters<MembershipEvents[E]>) => void)(...args);
      } catch (error: unknown) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
