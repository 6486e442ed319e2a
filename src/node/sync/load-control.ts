import { monitorEventLoopDelay } from 'node:perf_hooks';
import { invalidArgument } from '../../common/errors.js';
import type { Membership } from '../../gossip/index.js';
import { AimdController, type AimdOptions } from '../../limiter/adaptive.js';

/** Gossip metadata key: the limit factor a node asks for ("0.75"; at most 12 significant digits). */
export const META_LOAD = 'load';

/** Adaptive limits measured from this process's event-loop delay (p99 per sample, in ms), with AIMD. */
export interface AdaptiveOptions extends AimdOptions {
  /** How often the delay is sampled and the controller fed. */
  sampleMs: number;
}

export interface LoadControlComponents {
  /** The cluster's members (their advertised factors), or undefined on a lone node. */
  membership: Membership | undefined;
  /** Puts the factor in force. */
  apply: (factor: number) => void;
  /** The load signal since the last call (event-loop delay p99, ms); undefined: not measured. */
  sample: (() => number) | undefined;
  now: () => number;
}

const parseFactor = (value: string | undefined): number => {
  const n = value === undefined ? Number.NaN : Number(value);
  return n > 0 && n <= 1 ? n : 1;
};

/**
 * The limit factor in force on a node: the smallest of what the application reports
 * (setLoadFactor), what the AIMD controller measures, and — in a cluster — what every live
 * member advertises, so that every node scales the same limits the same way.
 */
export class LoadControl {
  private reported = 1;
  private published = '';
  private readonly timer: NodeJS.Timeout | undefined;

  /**
   * A node's load control: with `adaptive`, an AIMD controller fed by this process's
   * event-loop delay; else the factor the application reports alone.
   */
  static forNode(membership: Membership | undefined, apply: (factor: number) => void, adaptive: AdaptiveOptions | undefined, now: () => number): LoadControl {
    const sampler = adaptive === undefined ? undefined : eventLoopDelaySampler();
    const control = new LoadControl({ membership, apply, sample: sampler?.sample, now }, adaptive === undefined ? undefined : new AimdController(adaptive), adaptive?.sampleMs ?? 1_000, sampler?.stop);
    control.update();
    return control;
  }

  constructor(
    private readonly components: LoadControlComponents,
    private readonly controller: AimdController | undefined,
    sampleMs: number,
    /** Stops the load signal's measurement (the delay sampler), on close. */
    private readonly stopSampling: (() => void) | undefined = undefined,
  ) {
    if (components.sample !== undefined && controller !== undefined) {
      this.timer = setInterval(() => {
        controller.observe(components.sample!(), components.now());
        this.update();
      }, sampleMs);
      this.timer.unref();
    }
  }

  /** The factor this node asks for. */
  get own(): number {
    return Math.min(this.reported, this.controller?.factor ?? 1);
  }

  report(factor: number): void {
    if (typeof factor !== 'number' || !(factor > 0 && factor <= 1)) throw invalidArgument('loadFactor', `must be a number above 0 and at most 1, got ${String(factor)}`);
    this.reported = factor;
    this.update();
  }

  /** Recomputes the factor in force (after a sample, a report, or a member's change) and advertises this node's. */
  update(): void {
    const own = this.own;
    let factor = own;
    const membership = this.components.membership;
    if (membership !== undefined) {
      const text = String(Number(own.toPrecision(12)));
      if (text !== this.published) {
        this.published = text;
        membership.updateMeta({ ...membership.self.meta, [META_LOAD]: text });
      }
      for (const m of membership.members()) factor = Math.min(factor, parseFactor(m.meta[META_LOAD]));
    }
    this.components.apply(factor);
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.stopSampling?.();
  }
}

/** The p99 event-loop delay of this process since the previous call, in ms. */
export function eventLoopDelaySampler(): { sample: () => number; stop: () => void } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  return {
    sample: () => {
      const p99 = histogram.count === 0 ? 0 : histogram.percentile(99) / 1e6;
      histogram.reset();
      return p99;
    },
    stop: () => histogram.disable(),
  };
}
