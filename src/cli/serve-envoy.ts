import { RingLimitError } from '../common/errors.js';
import { ENVOY_HEADER_NAMES, type EnvoySettings } from '../envoy/answer.js';
import type { EnvoyDescriptors, EnvoyLoadOptions } from '../envoy/descriptors.js';
import { envoyConfigStamp, readEnvoyConfig } from '../node/ops/envoy-config-file.js';

/** serve's flags for Envoy's rate limit service: envoyproxy/ratelimit's settings (its environment variables in brackets). */
export const ENVOY_USAGE = `  --envoy-config PATH     serve Envoy's global rate limit API (envoy.service.ratelimit.v3) on the
                          gRPC port from envoyproxy/ratelimit configuration, unchanged: a file, or a
                          directory whose every file is read (its runtime directory); repeat for
                          several. Re-read when a file changes, is added or removed (docs/envoy.md);
                          --policies takes such a file too
  --envoy-merge-domains   files of one domain are merged, not refused [MERGE_DOMAIN_CONFIG]
  --envoy-shadow-mode     never answer OVER_LIMIT overall; statuses still say which limit was over
                          [SHADOW_MODE]
  --envoy-quota-mode      every limit is a quota: OVER_LIMIT only when all are over [QUOTA_MODE]
  --envoy-response-headers
                          add RateLimit-Limit, -Remaining and -Reset of the most restrictive limit
                          [LIMIT_RESPONSE_HEADERS_ENABLED]
  --envoy-header-limit NAME, --envoy-header-remaining NAME, --envoy-header-reset NAME
                          those headers' names [LIMIT_LIMIT_HEADER, LIMIT_REMAINING_HEADER,
                          LIMIT_RESET_HEADER]
  --envoy-dynamic-metadata
                          answer the request and the passed limits' metadata as dynamic metadata
                          [RESPONSE_DYNAMIC_METADATA]
`;

export const ENVOY_FLAGS = {
  'envoy-config': { type: 'string', multiple: true },
  'envoy-merge-domains': { type: 'boolean' },
  'envoy-shadow-mode': { type: 'boolean' },
  'envoy-quota-mode': { type: 'boolean' },
  'envoy-response-headers': { type: 'boolean' },
  'envoy-header-limit': { type: 'string' },
  'envoy-header-remaining': { type: 'string' },
  'envoy-header-reset': { type: 'string' },
  'envoy-dynamic-metadata': { type: 'boolean' },
} as const;

export interface EnvoyFlagValues {
  'envoy-config'?: string[] | undefined;
  'envoy-merge-domains'?: boolean | undefined;
  'envoy-shadow-mode'?: boolean | undefined;
  'envoy-quota-mode'?: boolean | undefined;
  'envoy-response-headers'?: boolean | undefined;
  'envoy-header-limit'?: string | undefined;
  'envoy-header-remaining'?: string | undefined;
  'envoy-header-reset'?: string | undefined;
  'envoy-dynamic-metadata'?: boolean | undefined;
}

/** The service's settings from the flags (the node validates them, naming the option). */
export function envoySettingsOf(v: EnvoyFlagValues): Partial<EnvoySettings> {
  const names = { limit: v['envoy-header-limit'], remaining: v['envoy-header-remaining'], reset: v['envoy-header-reset'] };
  const named = names.limit !== undefined || names.remaining !== undefined || names.reset !== undefined;
  if (named && v['envoy-response-headers'] !== true) throw new RingLimitError('INVALID_ARGUMENT', '--envoy-header-* name the headers of --envoy-response-headers, which is not given');
  return {
    shadowMode: v['envoy-shadow-mode'] === true,
    quotaMode: v['envoy-quota-mode'] === true,
    dynamicMetadata: v['envoy-dynamic-metadata'] === true,
    responseHeaders:
      v['envoy-response-headers'] === true
        ? { limit: names.limit ?? ENVOY_HEADER_NAMES.limit, remaining: names.remaining ?? ENVOY_HEADER_NAMES.remaining, reset: names.reset ?? ENVOY_HEADER_NAMES.reset }
        : undefined,
  };
}

export function envoyLoadOptionsOf(v: EnvoyFlagValues): EnvoyLoadOptions {
  return { mergeDomains: v['envoy-merge-domains'] === true };
}

export interface EnvoyConfigWatch {
  close(): void;
}

/**
 * Re-reads the configuration when what `paths` hold changed (checked every `intervalMs`: a
 * file written, added or removed) and has then stayed the same for one more check: a
 * directory being rewritten (old files removed, new ones copied in) is not read half-way.
 * A good configuration goes to onLoad; a bad one to onError, and the one in force stays.
 */
export function watchEnvoyConfig(paths: readonly string[], options: EnvoyLoadOptions, intervalMs: number, onLoad: (config: EnvoyDescriptors) => void, onError: (error: Error) => void): EnvoyConfigWatch {
  let loaded = envoyConfigStamp(paths);
  let seen = loaded;
  const timer = setInterval(() => {
    const now = envoyConfigStamp(paths);
    const settled = now === seen;
    seen = now;
    if (!settled || now === loaded) return;
    loaded = now;
    try {
      onLoad(readEnvoyConfig(paths, options));
    } catch (error) {
      onError(error as Error);
    }
  }, intervalMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
