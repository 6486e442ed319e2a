/**
 * The policy parser's worker thread (policy-loader.ts starts one per document): parses the
 * text (duplicate keys refused), validates all but the users, then hands it to the loader a slice of users at a
 * time, as the loader asks, and last its canonical text and digest. The main thread only
 * compiles slices, so its event loop keeps answering while a large document is applied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingLimitError } from '../../common/errors.js';
import { Policies, PoliciesBuilder, policyLimits } from '../../limiter/policies.js';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
import { policyDigest } from './policy-digest.js';
import { parsePolicyDocument, POLICY_BOUND_OPTIONS, prefixed, type PolicyBounds } from './policy-parse.js';
import type { FromPolicyWorker, ToPolicyWorker } from './policy-worker-protocol.js';

const job = workerData as ToPolicyWorker;
const port = parentPort!;
const post = (message: FromPolicyWorker): void => port.postMessage(message);

function run(text: string, source: string, bounds: PolicyBounds): void {
  let document: Record<string, unknown>;
  try {
    const parsed = parsePolicyDocument(text, source, bounds);
    const users = isRecord(parsed) ? parsed['users'] : undefined;
    const count = isRecord(users) ? Object.keys(users).length : 0;
    if (count <= policyLimits.maxCheckedCombinations) {
      // Small enough for the combination check (it would hold the loader's event loop): the whole document is checked here.
      new Policies(parsed, { maxUsers: bounds.maxUsers, maxUsersOption: POLICY_BOUND_OPTIONS.maxUsers });
    } else {
      // Too many for the check: the head here (its mistakes come first), the users as the loader compiles them.
      new PoliciesBuilder({ ...(parsed as object), users: {} }, { combinationsChecked: true });
      if (count > bounds.maxUsers) new Policies({ users }, { maxUsers: bounds.maxUsers, maxUsersOption: POLICY_BOUND_OPTIONS.maxUsers });
    }
    document = parsed as Record<string, unknown>;
  } catch (error) {
    const e = prefixed(error, source);
    if (e instanceof RingLimitError) post({ type: 'error', code: e.code, message: e.message, field: e.field });
    else post({ type: 'error', code: 'INVALID_ARGUMENT', message: `${source}: ${(e as Error).message}`, field: 'policies' });
    return;
  }
  const users = (document['users'] ?? {}) as Record<string, unknown>;
  const entries = Object.entries(users);
  // The head keeps the document's own key order (its canonical text depends on it).
  const head = document['users'] === undefined ? document : { ...document, users: {} };
  post({ type: 'head', head, users: entries.length });
  let next = 0;
  // One message ahead of the loader's asking: it never waits for this thread, and never has more than two to take in one turn.
  const postNext = (): void => {
    if (next < entries.length) {
      // As JSON text: a string crosses threads as one copy, and JSON.parse builds the slice faster than a structured clone.
      post({ type: 'users', json: JSON.stringify(entries.slice(next, next + job.sliceUsers)) });
      next += job.sliceUsers;
      return;
    }
    if (next === Infinity) return;
    next = Infinity;
    const canonical = JSON.stringify(document);
    post({ type: 'done', text: canonical, digest: policyDigest(canonical) });
    port.close();
  };
  postNext();
  port.on('message', postNext);
}

run(job.text, job.source, job.bounds);
