import { isIP } from 'node:net';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const MAX_ADDRESS_CHARS = 64;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function splitHostPort(text: string): { host: string; portText: string } | undefined {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return undefined;
    return { host: text.slice(1, close), portText: text.slice(close + 2) };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const host = text.slice(0, colon);
  if (host.includes(':')) return undefined; // bare IPv6 needs brackets
  return { host, portText: text.slice(colon + 1) };
}

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Parses a gossip address: an IP literal and a port 1..65535. Anything else is undefined. */
export function parseIpAddress(text: string): HostPort | undefined {
  if (text.length === 0 || text.length > MAX_ADDRESS_CHARS) return undefined;
  const parts = splitHostPort(text);
  if (parts === undefined || isIP(parts.host) === 0) return undefined;
  const port = parsePort(parts.portText);
  return port === undefined ? undefined : { host: parts.host, port };
}

/** Parses a seed: like a gossip address, but the host may also be a DNS name. */
export function parseSeed(text: string): HostPort | undefined {
  if (text.length === 0 || text.length > 260) return undefined;
  const parts = splitHostPort(text);
  if (parts === undefined) return undefined;
  if (isIP(parts.host) === 0 && !HOSTNAME.test(parts.host)) return undefined;
  const port = parsePort(parts.portText);
  return port === undefined ? undefined : { host: parts.host, port };
}

export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export function isValidIpAddress(text: string): boolean {
  return parseIpAddress(text) !== undefined;
}

/** Whether `host` (an IP literal or a name) can only mean this machine: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./i.test(h);
  return false;
}

/**
 * Who sent a datagram, for counting the members each source taught us: its host, or on
 * loopback (where every member of a one-host cluster shares the host) its host and port.
 */
export function sourceKey(address: string): string {
  const parsed = parseIpAddress(address);
  if (parsed === undefined) return address;
  return isLoopbackHost(parsed.host) ? address : parsed.host;
}
