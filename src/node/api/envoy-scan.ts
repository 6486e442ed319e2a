import { RingLimitError } from '../../common/errors.js';
import { envoyRequestLimits } from '../../envoy/answer.js';
import { LENGTH_DELIMITED, ProtoReader, countFields, tag } from './proto-reader.js';

/** RateLimitRequest { string domain = 1; repeated RateLimitDescriptor descriptors = 2; … }, RateLimitDescriptor { repeated Entry entries = 1; … }. */
const DESCRIPTORS = tag(2, LENGTH_DELIMITED);
const ENTRIES = 1;

/**
 * Why Envoy's RateLimitRequest in `bytes` is refused before it is decoded: more descriptors,
 * or a descriptor with more entries, than envoyRequestLimits allow (the planner's own
 * messages), or a malformed message. Counted while scanning, stopping past the cap: a request
 * of 200,000 descriptors costs a scan of 65. Undefined: it may be decoded.
 */
export function envoyRequestRefusal(bytes: Uint8Array): RingLimitError | undefined {
  try {
    const r = new ProtoReader(bytes, 'RateLimitRequest');
    let descriptors = 0;
    while (r.pos < r.end) {
      const t = r.varint();
      if (t !== DESCRIPTORS) {
        r.skip(t & 7);
        continue;
      }
      if (++descriptors > envoyRequestLimits.maxDescriptors) return new RingLimitError('INVALID_ARGUMENT', `descriptors: at most ${envoyRequestLimits.maxDescriptors}`, 'descriptors');
      const end = r.delimitedEnd();
      if (countFields(r, end, ENTRIES, envoyRequestLimits.maxEntries) > envoyRequestLimits.maxEntries) {
        const field = `descriptors[${descriptors - 1}].entries`;
        return new RingLimitError('INVALID_ARGUMENT', `${field}: 1 to ${envoyRequestLimits.maxEntries} entries`, field);
      }
      r.pos = end;
    }
    return undefined;
  } catch (error) {
    return error instanceof RingLimitError ? error : new RingLimitError('INVALID_ARGUMENT', 'malformed RateLimitRequest');
  }
}
