import type { EventEmitter } from 'node:events';
import type { Policies } from '../limiter/policies.js';
import type { LimiterStore } from '../limiter/store.js';
import type { CallerStats } from './api/caller-ledger.js';
import type { HttpApiBackend } from './api/http-api.js';
import { NodeServers } from './api/servers.js';
import { Cluster } from './cluster/cluster.js';
import { warmUp } from './warm-up.js';
import type { NodeRole } from './cluster/role.js';
import type { NodeEvents } from './node-events.js';
import type { NodeStats } from './ops/node-stats.js';
import type { NodeOptions } from './options.js';
import type { LoadedSnapshot } from './state/snapshot.js';
import { restoreAndSnapshot, type Snapshotter } from './state/snapshotter.js';
import { LoadControl } from './sync/load-control.js';

/** What the parts ask of the node as they start and run (besides telling its listeners). */
export interface NodePartsHooks {
  /** Policies from the cluster: put them in force. */
  applyPolicies(policies: Policies | undefined): void;
  /** The member's cluster is up: its router and decision take over. */
  joined(cluster: Cluster): void;
}

/**
 * A node's composition root: what start() makes and stop() closes besides the limiter core —
 * snapshots, the servers (gRPC and HTTP, started together and first: they answer from the
 * start), the cluster (for a member), load control — in that order, and the reverse to stop.
 */
export class NodeParts {
  servers: NodeServers | undefined;
  snapshotter: Snapshotter | undefined;
  loaded: LoadedSnapshot = { loaded: 0, members: [] };
  private cluster: Cluster | undefined;
  loadControl: LoadControl | undefined;

  constructor(
    /** A lone node (for a member: joining, not ready) until a member's cluster is up. */
    public role: NodeRole,
  ) {}

  async start(store: LimiterStore, o: NodeOptions, backend: HttpApiBackend, events: EventEmitter<NodeEvents>, hooks: NodePartsHooks): Promise<void> {
    const warn = (error: Error): boolean => events.emit('warning', error);
    if (o.dataDir !== undefined) {
      const init = { dataDir: o.dataDir, nodeId: o.nodeId, snapshotIntervalMs: o.snapshotIntervalMs, onCorruptSnapshot: o.onCorruptSnapshot };
      ({ snapshotter: this.snapshotter, loaded: this.loaded } = await restoreAndSnapshot({ store, clock: o.clock, members: () => this.cluster?.knownMembers() ?? [] }, init, warn));
    }
    const servers = await NodeServers.start(backend, { host: o.host, grpcPort: o.cluster ? o.port : undefined, httpPort: o.httpPort, tls: o.tls, apiTokens: o.apiTokens, adminTokens: o.adminTokens, callerLimits: o.callerLimits });
    this.servers = servers;
    let membership;
    if (o.cluster) {
      const cluster = await Cluster.start(
        {
          store,
          server: servers.grpc!,
          grpcAddress: servers.grpcAddress!,
          httpAddress: servers.httpAddress,
          onMembership: (event, member) => {
            this.loadControl?.update();
            events.emit('membership', event, member);
          },
          onOwnership: (owners) => events.emit('ownership', owners),
          policies: store.policies,
          applyPolicies: hooks.applyPolicies,
          warn: (message) => warn(new Error(message)),
          lastSeenMembers: this.loaded.members,
          warmUp: (budgetMs) => warmUp(budgetMs, (message) => warn(new Error(message))),
        },
        o,
      );
      this.role = cluster;
      this.cluster = cluster;
      membership = cluster.membership;
      hooks.joined(cluster);
    }
    this.loadControl = LoadControl.forNode(membership, (factor) => (store.loadFactor = factor), o.adaptive, () => o.clock.now());
  }

  /**
   * Graceful (default): hand the keys over (a member), write the last snapshot, leave, close
   * the servers — all before `deadlineMs`. Every part is closed whatever fails on the way;
   * then the first failure is thrown. `closeCore` stops the limiter core between the two.
   */
  async stop(graceful: boolean, deadlineMs: number, closeCore: () => void): Promise<void> {
    const failures: unknown[] = [];
    const attempt = (step: Promise<void> | undefined): Promise<void> | undefined => step?.catch((error: unknown) => void failures.push(error));
    this.loadControl?.close();
    if (graceful) await attempt(this.role.drain(deadlineMs));
    await attempt(this.snapshotter?.close(graceful));
    closeCore();
    await attempt(this.role.close(graceful));
    await attempt(this.servers?.close(deadlineMs));
    if (failures.length > 0) throw failures[0];
  }

  snapshotStats(): NodeStats['snapshot'] {
    const written = this.snapshotter?.stats ?? { written: 0, failed: 0, lastKeys: 0, lastWrittenAtMs: 0, lastError: '' };
    const pacing = this.snapshotter?.pacing ?? { skipped: 0, lastWriteMs: 0, gapMs: 0 };
    return { ...written, ...pacing, loadedKeys: this.loaded.loaded, setAsideTo: this.loaded.setAsideTo ?? '' };
  }

  callerStats(): CallerStats {
    return this.servers?.callerStats ?? NodeServers.noCallers;
  }
}
