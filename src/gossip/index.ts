import { formatAddress, parseIpAddress } from './address.js';
import { defaults } from './defaults.js';
import { resolveLimits } from './defaults.js';
import { SwimMembership, type SwimMembershipOptions } from './swim.js';
import type { PacketTransport } from './transport.js';
import { UdpTransport } from './udp-transport.js';

export interface CreateSwimOptions extends Omit<SwimMembershipOptions, 'transport' | 'advertiseAddress'> {
  /** IP to bind (default 127.0.0.1). */
  readonly host?: string;
  /** UDP port (default 0, which picks a free port; read it back from `membership.self.address`). */
  readonly port?: number;
  /** Host peers should use when `host` is a wildcard such as 0.0.0.0. */
  readonly advertiseHost?: string;
  /** Wraps the bound UDP transport (the chaos harness injects faults here). */
  readonly wrapTransport?: (transport: PacketTransport) => PacketTransport;
}

/** Binds a UDP socket and returns a (not yet started) SWIM membership on it. */
export async function createSwimMembership(options: CreateSwimOptions = {}): Promise<SwimMembership> {
  const limits = resolveLimits(options.limits);
  const transport = await UdpTransport.bind({
    host: options.host ?? defaults.bindHost,
    port: options.port ?? defaults.port,
    maxPacketBytes: limits.maxPacketBytes,
  });
  const bound = parseIpAddress(transport.localAddress);
  const advertiseAddress =
    options.advertiseHost === undefined || bound === undefined ? undefined : formatAddress(options.advertiseHost, bound.port);
  try {
    const wrapped = options.wrapTransport === undefined ? transport : options.wrapTransport(transport);
    return new SwimMembership({ ...options, transport: wrapped, ...(advertiseAddress === undefined ? {} : { advertiseAddress }) });
  } catch (error: unknown) {
    await transport.close();
    throw error;
  }
}

export { SwimMembership, type SwimMembershipOptions } from './swim.js';
export { StaticMembership, type StaticMembershipOptions, type StaticMemberSpec } from './static-membership.js';
export { MemoryNetwork, MemoryTransport, type MemoryNetworkOptions } from './memory-network.js';
export { UdpTransport, type UdpTransportOptions } from './udp-transport.js';
export type { PacketTransport } from './transport.js';
export { Keyring, type KeyInput } from './keyring.js';
export { isLoopbackHost } from './address.js';
export { ManualScheduler, realScheduler, type Scheduler } from './scheduler.js';
export { defaults, type PresetName, type SwimLimits, type SwimTimings } from './defaults.js';
export type { SwimStats } from './stats.js';
export type { ResolveHost } from './dns-resolver.js';
export type { Member, MemberState, Membership, MembershipEventName, MembershipEvents, Meta, StopOptions } from './types.js';
