/**
 * Typed errors with stable codes. Callers branch on `code`, never on message text.
 * The codes mirror gRPC status names so they map 1:1 onto the wire API.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'ABORTED'
  | 'FAILED_PRECONDITION'
  | 'UNAUTHENTICATED'
  | 'INTERNAL';

export class RingLimitError extends Error {
  readonly code: ErrorCode;
  /** Name of the offending field or option, when there is one. */
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'RingLimitError';
    this.code = code;
    this.field = field;
  }
}

/** The error thrown for bad requests and bad options. */
export class RateLimitError extends RingLimitError {
  constructor(code: ErrorCode, message: string, field?: string) {
    super(code, message, field);
    this.name = 'RateLimitError';
  }
}

export function invalidArgument(field: string, message: string): RateLimitError {
  return new RateLimitError('INVALID_ARGUMENT', `${field}: ${message}`, field);
}
