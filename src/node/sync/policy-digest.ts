import { createHash } from 'node:crypto';

/** The digest nodes compare: the first 64 bits of SHA-256 of a policy document's canonical text (its JSON), in hex. */
export function policyDigest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
