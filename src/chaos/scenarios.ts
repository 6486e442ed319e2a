import type { Accuracy } from './model.js';
import type { ChaosContext } from './runner.js';

export interface ScenarioOutcome {
  /** Time from the fault until every surviving node stopped listing a dead member. */
  detectMs?: number;
  /** Time from the end of the fault until every node lists every member again. */
  stableMs?: number;
}

export interface Scenario {
  name: string;
  /** The target as the issue states it. */
  target: string;
  /** Injects the fault at ctx.faultAt and undoes it; returns the timings it measured. */
  run(ctx: ChaosContext): Promise<ScenarioOutcome>;
  pass(a: Accuracy, o: ScenarioOutcome): boolean;
}

const noOver = (a: Accuracy) => a.overUnits === 0 && a.errors === 0;

export const scenarios: Record<string, Scenario> = {
  steady: {
    name: 'steady state, concurrent clients on every node',
    target: '0 over-admission',
    async run() {
      return {};
    },
    pass: noOver,
  },
  'kill-owners': {
    name: 'kill -9 of owners under load (one node at a time, two rounds), each restarted',
    target: 'over-admission ≤ 1 % of the affected limits; 0 client errors after client retry',
    async run(ctx) {
      // One at a time: with one replica, two simultaneous deaths lose the keys both held.
      let detectMs = 0;
      let stableMs = 0;
      for (const i of [ctx.nodes.length - 1, 1]) {
        ctx.kill(i);
        const detected = await ctx.until(() => ctx.allLiveSee(ctx.nodes.length - 1), 10_000);
        detectMs = detected < 0 ? -1 : Math.max(detectMs, detected);
        await ctx.restart(i);
        const stable = await ctx.until(() => ctx.allLiveSee(ctx.nodes.length), 15_000);
        stableMs = stable < 0 ? -1 : Math.max(stableMs, stable);
        // Let the restarted node become active and receive its replica copies before the next
        // failure: a second death before that is a double failure, beyond one replica.
        await ctx.sleep(2_000);
      }
      ctx.faultEnd();
      return { detectMs, stableMs };
    },
    pass: (a, o) => a.overPct <= 1 && a.errors === 0 && (o.detectMs ?? -1) >= 0,
  },
  'rolling-restart': {
    name: 'rolling restart of every node (SIGTERM, then start again)',
    target: 'over-admission ≤ 1 %',
    async run(ctx) {
      for (let i = 0; i < ctx.nodes.length; i++) {
        await ctx.stopGracefully(i);
        await ctx.restart(i);
        await ctx.until(() => ctx.allLiveSee(ctx.nodes.length), 15_000);
      }
      ctx.faultEnd();
      return {};
    },
    pass: (a) => a.overPct <= 1,
  },
  sigstop: {
    name: 'SIGSTOP one node for 2 s, then SIGCONT',
    target: 'no lasting split; over-admission ≤ 1 %',
    async run(ctx) {
      const i = ctx.nodes.length - 1;
      ctx.signal(i, 'SIGSTOP');
      await ctx.sleep(2_000);
      ctx.signal(i, 'SIGCONT');
      ctx.faultEnd();
      const stableMs = await ctx.until(() => ctx.allLiveSee(ctx.nodes.length), 15_000);
      return { stableMs };
    },
    pass: (a, o) => a.overPct <= 1 && o.stableMs !== undefined && o.stableMs >= 0,
  },
  partition: {
    name: 'network partition (gossip and peer traffic) into two sides, then heal',
    target: 'reconverges ≤ 5 s after heal; over-admission during the split within the documented bound',
    async run(ctx) {
      const half = Math.floor(ctx.nodes.length / 2);
      const left = ctx.nodes.slice(0, half).map((_, i) => i);
      const right = ctx.nodes.slice(half).map((_, i) => i + half);
      ctx.partition(left, right);
      await ctx.sleep(6_000);
      ctx.heal();
      ctx.faultEnd();
      const stableMs = await ctx.until(() => ctx.allLiveSee(ctx.nodes.length), 15_000);
      return { stableMs };
    },
    // During a split each side may admit up to the full limit: the bound is 100 % per extra side.
    pass: (_a, o) => o.stableMs !== undefined && o.stableMs >= 0 && o.stableMs <= 5_000,
  },
  'partition-one-way': {
    name: 'one-way partition: one node cannot send to the others (gossip and peer traffic), then heal',
    target: 'reconverges ≤ 5 s after heal; over-admission during the split within the documented bound',
    async run(ctx) {
      const last = ctx.nodes.length - 1;
      ctx.partitionOneWay([last], ctx.nodes.slice(0, last).map((_, i) => i));
      await ctx.sleep(4_000);
      ctx.heal();
      ctx.faultEnd();
      const stableMs = await ctx.until(() => ctx.allLiveSee(ctx.nodes.length), 15_000);
      return { stableMs };
    },
    pass: (_a, o) => o.stableMs !== undefined && o.stableMs >= 0 && o.stableMs <= 5_000,
  },
  skew: {
    name: 'clock skew: node clocks offset by up to ±5 s (and drifting 100 ppm)',
    target: '0 over-admission in steady state',
    async run(ctx) {
      ctx.nodes.forEach((_, i) => ctx.clock(i, ((i % 3) - 1) * 5_000, i % 2 === 0 ? 100 : -100));
      ctx.faultEnd();
      return {};
    },
    pass: noOver,
  },
};

export const QUICK = ['steady', 'kill-owners', 'skew'];
export const FULL = ['steady', 'kill-owners', 'rolling-restart', 'sigstop', 'partition', 'partition-one-way', 'skew'];
