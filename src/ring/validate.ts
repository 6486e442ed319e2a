import { invalidArgument } from '../common/errors.js';
import { ringDefaults, ringLimits } from './limits.js';
import { pointCountFor, type RingNode } from './points.js';

/** A member as callers describe it. `weight` defaults to 1 (relative capacity). */
export interface RingMember {
  readonly nodeId: string;
  readonly weight?: number;
}

export interface RingOptions {
  /** Points per node of weight 1; default `ringDefaults.vnodesPerNode`. */
  readonly vnodesPerNode?: number;
}

/** Lone surrogates would encode as U+FFFD and make distinct nodeIds share every point. */
function isWellFormedUtf16(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit > 0xdbff) return false;
    const next = s.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

export function resolveVnodesPerNode(options: RingOptions | undefined): number {
  if (options === undefined) return ringDefaults.vnodesPerNode;
  if (typeof options !== 'object' || options === null) {
    throw invalidArgument('options', 'must be an object when given');
  }
  const vnodes = options.vnodesPerNode ?? ringDefaults.vnodesPerNode;
  if (!Number.isInteger(vnodes) || vnodes < 1 || vnodes > ringLimits.maxVnodesPerNode) {
    throw invalidArgument('vnodesPerNode', `must be an integer from 1 to ${ringLimits.maxVnodesPerNode}`);
  }
  return vnodes;
}

function resolveNode(member: unknown, at: number): RingNode {
  if (typeof member !== 'object' || member === null) {
    throw invalidArgument(`members[${at}]`, 'must be an object { nodeId, weight? }');
  }
  const { nodeId, weight = ringDefaults.weight } = member as RingMember;
  if (typeof nodeId !== 'string' || nodeId.length === 0) {
    throw invalidArgument(`members[${at}].nodeId`, 'must be a non-empty string');
  }
  // At most 3 UTF-8 bytes per UTF-16 unit: only long ids need measuring.
  if (nodeId.length * 3 > ringLimits.maxNodeIdBytes && Buffer.byteLength(nodeId, 'utf8') > ringLimits.maxNodeIdBytes) {
    throw invalidArgument(`members[${at}].nodeId`, `must be at most ${ringLimits.maxNodeIdBytes} bytes in UTF-8`);
  }
  if (!isWellFormedUtf16(nodeId)) {
    throw invalidArgument(`members[${at}].nodeId`, 'must not contain lone surrogates (not valid Unicode)');
  }
  if (typeof weight !== 'number' || !Number.isFinite(weight)) {
    throw invalidArgument(`members[${at}].weight`, 'must be a finite number');
  }
  if (weight <= 0 || weight > ringLimits.maxWeight) {
    throw invalidArgument(`members[${at}].weight`, `must be > 0 and at most ${ringLimits.maxWeight}`);
  }
  return Object.freeze({ nodeId, weight });
}

/** Validated, frozen nodes sorted by nodeId (UTF-16 code unit order, the same everywhere). */
export function resolveNodes(members: readonly RingMember[]): readonly RingNode[] {
  if (!Array.isArray(members)) {
    throw invalidArgument('members', 'must be an array of { nodeId, weight? }');
  }
  if (members.length > ringLimits.maxMembers) {
    throw invalidArgument('members', `must have at most ${ringLimits.maxMembers} entries, got ${members.length}`);
  }
  const nodes = members.map((member: unknown, at) => resolveNode(member, at));
  nodes.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  for (let i = 1; i < nodes.length; i++) {
    const nodeId = (nodes[i] as RingNode).nodeId;
    if (nodeId === (nodes[i - 1] as RingNode).nodeId) {
      throw invalidArgument('members', `nodeId ${JSON.stringify(nodeId)} appears more than once`);
    }
  }
  return Object.freeze(nodes);
}

/** Bounds memory: weight and vnodes multiply, so check their product over all nodes. */
export function checkPointCount(nodes: readonly RingNode[], vnodesPerNode: number): void {
  let total = 0;
  for (const node of nodes) total += pointCountFor(node.weight, vnodesPerNode);
  if (total > ringLimits.maxPointCount) {
    throw invalidArgument(
      'members',
      `would need ${total} ring points (weights × vnodesPerNode), more than the ${ringLimits.maxPointCount} allowed; lower vnodesPerNode or weights`,
    );
  }
}
