import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RingLimitError } from '../../common/errors.js';
import { PoliciesBuilder, type Policies, type PolicyDocument } from '../../limiter/policies.js';
import { policyDigest } from './policy-digest.js';
import { parsePolicyDocument, POLICY_BOUND_OPTIONS, prefixed, type PolicyBounds } from './policy-parse.js';
import type { FromPolicyWorker, ToPolicyWorker } from './policy-worker-protocol.js';

/**
 * Loads a policy document without holding the event loop: the text is parsed and validated
 * in a worker thread (policy-worker.ts), and compiled here a slice of users per turn of the
 * event loop, so a node keeps answering while it applies a large document (admin
 * SetPolicies, the watched file, a document from a peer). One document at a time per
 * process: later loads wait their turn. Where the worker cannot run (the TypeScript sources
 * under a test runner), the text is parsed on this thread and compiled in the same slices.
 */

/** A loaded document: compiled, with its canonical text (JSON) and that text's digest. */
export interface LoadedPolicies {
  policies: Policies;
  text: string;
  digest: string;
}

/** Users compiled per turn of the event loop (about 10 ms on this machine). */
export const SLICE_USERS = 10_000;
/** The worker's heap: a YAML document costs the parser about 100 times its size. */
const WORKER_HEAP_MB = 4_096;

const canonical = new WeakMap<Policies, { text: string; digest: string }>();

/** The canonical text and digest a loader made for `policies`, if it did (saves a stringify of a large document). */
export function canonicalOf(policies: Policies): { text: string; digest: string } | undefined {
  return canonical.get(policies);
}

let queue: Promise<unknown> = Promise.resolve();

/** Parses, validates and compiles a policy document's text off the event loop; errors name `source` (typed, as parsePolicyText's). */
export function loadPolicyText(text: string, source: string, bounds: PolicyBounds): Promise<LoadedPolicies> {
  const run = queue.then(() => (workerFile() === undefined ? loadHere(text, source, bounds) : loadInWorker(text, source, bounds)));
  queue = run.catch(() => undefined);
  return run;
}

function workerFile(): URL | undefined {
  const url = new URL('./policy-worker.js', import.meta.url);
  return import.meta.url.endsWith('.js') && existsSync(fileURLToPath(url)) ? url : undefined;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function builderFor(head: unknown, bounds: PolicyBounds, checked: boolean): PoliciesBuilder {
  return new PoliciesBuilder(head, { maxUsers: bounds.maxUsers, maxUsersOption: POLICY_BOUND_OPTIONS.maxUsers, combinationsChecked: checked });
}

/** The compiled policies; their plain document is parsed from the canonical text only if someone asks for it. */
function finish(builder: PoliciesBuilder, text: string, digest: string): LoadedPolicies {
  const policies = builder.finish(() => JSON.parse(text) as PolicyDocument);
  canonical.set(policies, { text, digest });
  return { policies, text, digest };
}

/** Without a worker: parsed here at once, compiled in slices. */
async function loadHere(text: string, source: string, bounds: PolicyBounds): Promise<LoadedPolicies> {
  try {
    const document = parsePolicyDocument(text, source, bounds);
    const users = (document as Record<string, unknown>)['users'];
    const entries = users !== null && typeof users === 'object' ? Object.entries(users) : [];
    const builder = builderFor(entries.length > 0 ? { ...(document as object), users: {} } : document, bounds, false);
    for (let at = 0; at < entries.length; at += SLICE_USERS) {
      await nextTurn();
      builder.addUsers(entries.slice(at, at + SLICE_USERS), false);
    }
    await nextTurn();
    const canonicalText = JSON.stringify(document);
    return finish(builder, canonicalText, policyDigest(canonicalText));
  } catch (error) {
    throw prefixed(error, source);
  }
}

function loadInWorker(text: string, source: string, bounds: PolicyBounds): Promise<LoadedPolicies> {
  return new Promise<LoadedPolicies>((resolve, reject) => {
    const job: ToPolicyWorker = { text, source, bounds, sliceUsers: SLICE_USERS };
    // execArgv: [] — the process's own flags (--input-type, --eval, …) are not the worker's.
    const worker = new Worker(workerFile()!, { workerData: job, execArgv: [], resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    let builder: PoliciesBuilder | undefined;
    let settled = false;
    const settle = (error: unknown, loaded?: LoadedPolicies): void => {
      if (settled) return;
      settled = true;
      void worker.terminate();
      if (loaded !== undefined) resolve(loaded);
      else reject(error);
    };
    worker.on('message', (message: FromPolicyWorker) => {
      try {
        switch (message.type) {
          case 'error':
            return settle(new RingLimitError(message.code, message.message, message.field));
          case 'head':
            builder = builderFor(message.head, bounds, true); // the worker checked the combinations (or there are too many to check)
            break;
          case 'users':
            builder!.addUsers(JSON.parse(message.json) as [string, unknown][], false);
            break;
          case 'done':
            return settle(undefined, finish(builder!, message.text, message.digest));
        }
        // Asked for after the event loop turns: a port takes every message that has come in one go (up to 1,000),
        // so a reply to a 'next' posted here would be taken before any other callback runs.
        setImmediate(() => {
          if (!settled) worker.postMessage('next');
        });
      } catch (error) {
        settle(prefixed(error, source));
      }
    });
    worker.on('error', (error: Error & { code?: string }) => {
      const why = error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `parsing it needs more than ${WORKER_HEAP_MB} MB (a YAML document costs about 100 times its size: give a large one as JSON)` : error.message;
      settle(new RingLimitError('RESOURCE_EXHAUSTED', `${source}: the policy document was not loaded: ${why}`, 'policies'));
    });
    worker.on('exit', (code) => settle(new RingLimitError('INTERNAL', `${source}: the policy parser stopped (exit code ${code})`, 'policies')));
  });
}
