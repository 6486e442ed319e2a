import { MAX_BATCH_ITEMS } from './backend.js';
import { HttpError, parseJson } from './http-json.js';

/** Characters scanned per step, and requests parsed per step: each step well under a slice (batchBudgetDefaults.sliceMs). */
const SCAN_CHARS = 32_768;
const PARSE_ITEMS = 200;

const notJson = (): HttpError => new HttpError(400, 'INVALID_ARGUMENT', 'body', 'the body must be JSON');
const tooMany = (): HttpError => new HttpError(400, 'INVALID_ARGUMENT', 'requests', `at most ${MAX_BATCH_ITEMS} requests per batch`);
const notABatch = (): HttpError => new HttpError(400, 'INVALID_ARGUMENT', 'requests', 'the body must be { "requests": [ ... ] }');

/** The opening every client writes: `{"requests":[`, with JSON's whitespace between. */
const OPENING = /^[ \t\n\r]*\{[ \t\n\r]*"requests"[ \t\n\r]*:[ \t\n\r]*\[/y;
/** ...and the closing after the array: `}` and whitespace. */
const CLOSING = /^[ \t\n\r]*\}[ \t\n\r]*$/;

const enum Phase {
  Decode,
  Scan,
  Parse,
  Done,
}

/**
 * The requests of a `/v1/allow-batch` body, read in steps short enough to run under the large
 * batches' budget: one JSON.parse of a 10,000-request body (750 kB) took 3–5 ms in one piece.
 * A body of the shape clients send — `{"requests":[ … ]}` — is scanned for where each request
 * starts and ends (strings and nesting followed, separators checked), then its requests are
 * parsed PARSE_ITEMS at a time (`JSON.parse` of `[` + a run of them + `]`), so JSON's own rules
 * judge every request and the commas between them; any other shape is parsed whole, as before.
 * Either way the result, and the 400 for a body that is not JSON or holds more than
 * MAX_BATCH_ITEMS requests, is what JSON.parse of the whole body gives (a body both over the
 * cap and malformed after it is refused for the count, as a gRPC batch is, before the rest is read).
 */
export class BatchBodyReader {
  private phase = Phase.Decode;
  private text = '';
  private pos = 0;
  /** Start and end (exclusive) of each request in `text`. */
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private parsed = 0;
  private requests: unknown[] | undefined;
  /** Scanner state: nesting depth inside the current request, inside a string, after a backslash, inside a request. */
  private depth = 0;
  private inString = false;
  private escaped = false;
  private inItem = false;
  /** A comma was read and no request has followed it yet. */
  private afterComma = false;

  constructor(private readonly bytes: Buffer) {}

  /** One step of the work; returns whether steps remain. Throws HttpError for a body that is not a batch. */
  step(): boolean {
    switch (this.phase) {
      case Phase.Decode:
        return this.decode();
      case Phase.Scan:
        return this.scan();
      case Phase.Parse:
        return this.parse();
      case Phase.Done:
        return false;
    }
  }

  /** The requests, once step() returned false. */
  result(): unknown[] {
    if (this.requests === undefined) throw notABatch();
    return this.requests;
  }

  private decode(): boolean {
    this.text = this.bytes.toString('utf8');
    OPENING.lastIndex = 0;
    if (!OPENING.test(this.text)) return this.whole();
    this.pos = OPENING.lastIndex;
    this.phase = Phase.Scan;
    return true;
  }

  /** Any other shape: parsed in one piece, as it always was. */
  private whole(): boolean {
    const body = parseJson(this.bytes);
    const requests = (body as { requests?: unknown } | null)?.requests;
    if (typeof body !== 'object' || body === null || !Array.isArray(requests)) throw notABatch();
    if (requests.length > MAX_BATCH_ITEMS) throw tooMany();
    this.requests = requests;
    this.phase = Phase.Done;
    return false;
  }

  private scan(): boolean {
    const text = this.text;
    const end = Math.min(text.length, this.pos + SCAN_CHARS);
    let i = this.pos;
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (this.inItem) {
        if (c === 0x22) this.inString = true;
        else if (c === 0x7b || c === 0x5b) this.depth++;
        else if ((c === 0x7d || c === 0x5d) && this.depth > 0) this.depth--;
        else if (this.depth === 0 && (c === 0x2c || c === 0x5d || isSpace(c))) {
          this.endItem(i);
          i--; // the separator is read between requests
        }
        continue;
      }
      // Between requests: whitespace, one comma before each request but the first, or the end of the array.
      if (isSpace(c)) continue;
      if (c === 0x2c) {
        if (this.afterComma || this.starts.length === 0) throw notJson();
        this.afterComma = true;
        continue;
      }
      if (c === 0x5d) {
        if (this.afterComma) throw notJson();
        // More after the array (another key, a second "requests"): JSON's rules for the whole body decide.
        if (!CLOSING.test(text.slice(i + 1))) return this.whole();
        this.phase = Phase.Parse;
        this.pos = i + 1;
        return true;
      }
      if (this.starts.length > 0 && !this.afterComma) throw notJson();
      if (this.starts.length >= MAX_BATCH_ITEMS) throw tooMany();
      this.afterComma = false;
      this.inItem = true;
      this.starts.push(i);
      i--; // the request's first character is read as part of it
    }
    this.pos = i;
    if (i >= text.length) throw notJson(); // the array never closed
    return true;
  }

  private endItem(at: number): void {
    this.inItem = false;
    this.ends.push(at);
  }

  private parse(): boolean {
    const count = this.starts.length;
    const out = (this.requests ??= []);
    if (this.parsed < count) {
      const last = Math.min(count, this.parsed + PARSE_ITEMS) - 1;
      let values: unknown;
      try {
        values = JSON.parse(`[${this.text.slice(this.starts[this.parsed]!, this.ends[last])}]`);
      } catch {
        throw notJson();
      }
      // A run that JSON reads as another number of values was not that many requests (e.g. an unbalanced bracket inside one).
      if (!Array.isArray(values) || values.length !== last - this.parsed + 1) throw notJson();
      for (const v of values) out.push(v);
      this.parsed = last + 1;
    }
    if (this.parsed < count) return true;
    this.phase = Phase.Done;
    this.text = '';
    return false;
  }
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
