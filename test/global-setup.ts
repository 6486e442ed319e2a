import { builtCli } from './chaos/built-cli.js';

/**
 * Builds dist/ once, before the workers start, when it is missing or older than src/: the
 * chaos, examples and walkthrough tests run the built package, and two workers building it
 * at once would each see a half-written dist/.
 */
export default function setup(): void {
  builtCli();
}
