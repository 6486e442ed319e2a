import type { ErrorCode } from '../../common/errors.js';
import type { PolicyBounds } from './policy-parse.js';

/** What the loader gives the policy worker (its workerData). */
export interface ToPolicyWorker {
  text: string;
  source: string;
  bounds: PolicyBounds;
  /** Users per slice it hands back. */
  sliceUsers: number;
}

/** What the worker posts: the document without its users, then slices of users (one at once, then one per 'next' the loader posts), then its canonical text; or the first mistake. */
export type FromPolicyWorker =
  | { type: 'head'; head: unknown; users: number }
  /** A slice of users: JSON of [key, user][]. */
  | { type: 'users'; json: string }
  | { type: 'done'; text: string; digest: string }
  | { type: 'error'; code: ErrorCode; message: string; field: string | undefined };
