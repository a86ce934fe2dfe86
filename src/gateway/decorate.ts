/**
 * Same-dialect responses pass through as the upstream's bytes, with three things changed, as
 * OpenRouter does: `id` becomes the generation id, a top-level `provider` names the provider
 * that served the request, and `usage.cost` carries the cost in USD. On the usual shape these are
 * spliced into the text (no re-serialisation of the whole body); anything unusual is parsed and
 * re-serialised instead, so the result is always valid JSON with exactly one of each key.
 */
import { encodeUsage } from '../api/openai/encode-response.js';
import { nanoToUsd } from '../billing/money.js';
import type { IRUsage } from '../ir/usage.js';

type Body = Record<string, unknown>;

const USAGE_KEY = '"usage"';
const ID_KEY = '"id"';

function isObject(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A non-streamed chat completion: `text` is the upstream's body, `json` its parse. `usage` is
 * what was billed (used when the upstream reported none).
 */
export function decorateCompletion(
  text: string,
  json: unknown,
  generationId: string,
  provider: string,
  costNano: number,
  usage: IRUsage,
): string {
  if (!isObject(json)) return text;
  const cost = nanoToUsd(costNano);
  const spliced = splice(text, json, generationId, provider, cost);
  if (spliced !== undefined) return spliced;
  const { id: _id, provider: _p, ...rest } = json;
  const u = isObject(json.usage) ? { ...json.usage, cost } : encodeUsage(usage, costNano);
  return JSON.stringify({ id: generationId, provider, ...rest, usage: u });
}

/**
 * Splices into the usual shape: the body starts with `{"id": "<string>"` and holds exactly one
 * `"usage"` key whose value is an object without `cost`, and no top-level `provider`. (A `"`
 * inside a JSON string is always escaped, so an unescaped `"usage"` followed by `:` is a key.)
 */
function splice(text: string, json: Body, generationId: string, provider: string, cost: number): string | undefined {
  if (typeof json.id !== 'string' || json.provider !== undefined || !isObject(json.usage) || json.usage.cost !== undefined) return undefined;
  // The leading `"id"` value must be the id JSON.parse kept (the last one, were the key
  // repeated): then it is the only id and can be replaced in place.
  const lead = leadingId(text);
  if (lead === undefined || lead.id !== json.id) return undefined;
  const idEnd = lead.end;
  // A second top-level "id" (same value) would survive the splice and win in the client's parse.
  // Nested ones (tool calls have ids) are fine; they are told apart only when there are any.
  if (text.indexOf(ID_KEY, idEnd) >= 0 && hasTopLevelKey(text, idEnd, ID_KEY)) return undefined;
  // Exactly one `"usage"` (a forward search: V8's lastIndexOf is a slow, unoptimised loop).
  const usageAt = text.indexOf(USAGE_KEY, idEnd);
  if (usageAt < 0 || text.indexOf(USAGE_KEY, usageAt + USAGE_KEY.length) >= 0) return undefined;
  // … and `"usage" : {`.
  let at = skipSpace(text, usageAt + USAGE_KEY.length);
  if (text.charCodeAt(at) !== 0x3a) return undefined;
  at = skipSpace(text, at + 1);
  if (text.charCodeAt(at) !== 0x7b) return undefined;
  const inner = skipSpace(text, at + 1); // first character after `{` and any whitespace
  const emptyUsage = text.charCodeAt(inner) === 0x7d; // `}`
  return (
    `{"id":${JSON.stringify(generationId)},"provider":${JSON.stringify(provider)}` +
    text.slice(idEnd, inner) +
    `"cost":${numberJson(cost)}${emptyUsage ? '' : ','}` +
    text.slice(inner)
  );
}

/**
 * When `text` starts `{ "id" : "…"` (any JSON whitespace) and that string has no escape: the id,
 * and the offset just past its closing quote.
 */
function leadingId(text: string): { id: string; end: number } | undefined {
  let at = skipSpace(text, 0);
  if (text.charCodeAt(at) !== 0x7b) return undefined; // {
  at = skipSpace(text, at + 1);
  if (!text.startsWith(ID_KEY, at)) return undefined;
  at = skipSpace(text, at + ID_KEY.length);
  if (text.charCodeAt(at) !== 0x3a) return undefined; // :
  const start = skipSpace(text, at + 1);
  if (text.charCodeAt(start) !== 0x22) return undefined;
  const end = text.indexOf('"', start + 1);
  if (end < 0) return undefined;
  const id = text.slice(start + 1, end);
  return id.includes('\\') ? undefined : { id, end: end + 1 };
}

/**
 * Whether `key` (a JSON string literal) is written as a key of the top-level object at or after
 * `from`, an offset inside that object and outside any string.
 */
function hasTopLevelKey(text: string, from: number, key: string): boolean {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // To the closing quote; a backslash escapes the character after it.
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (depth === 1 && j + 1 - i === key.length && text.startsWith(key, i) && text.charCodeAt(skipSpace(text, j + 1)) === 0x3a) return true;
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      if (--depth === 0) return false;
    }
  }
  return false;
}

/** A number as JSON writes it: `String` for finite numbers (the same text, ten times cheaper), else null. */
function numberJson(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/** The index of the first character at or after `i` that is not JSON whitespace. */
function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/**
 * What a stream chunk's text says about usage, without parsing it: `none` (no `"usage"` key),
 * `null` (every `"usage"` key has the value null, as in each of OpenAI's chunks before the last
 * when usage was requested) or `value` (there is a usage to read, or the text is unusual: parse it).
 */
export function usageInChunk(data: string): 'none' | 'null' | 'value' {
  let found: 'none' | 'null' = 'none';
  for (let at = data.indexOf(USAGE_KEY); at >= 0; at = data.indexOf(USAGE_KEY, at + USAGE_KEY.length)) {
    const colon = skipSpace(data, at + USAGE_KEY.length);
    if (data.charCodeAt(colon) !== 0x3a) continue; // a string value "usage", not a key
    const value = skipSpace(data, colon + 1);
    if (!data.startsWith('null', value)) return 'value';
    const after = data.charCodeAt(skipSpace(data, value + 4));
    if (after !== 0x2c && after !== 0x7d) return 'value'; // `nullx`: not JSON; let the parse say so
    found = 'null';
  }
  return found;
}

const NULL_USAGE_TAIL = ',"usage":null}';

/**
 * The chunk without its `"usage":null` when that is its last member, written compactly (as
 * OpenAI writes it): for a client that did not ask for usage, which OpenAI would not send.
 * Other layouts are left as they are (the field is optional and nullable in the schema).
 */
export function withoutNullUsage(data: string): string {
  return data.endsWith(NULL_USAGE_TAIL) ? `${data.slice(0, data.length - NULL_USAGE_TAIL.length)}}` : data;
}

/**
 * Stream chunks: the same id and provider rewrite on every chunk. The first chunk tells the
 * upstream's id (read from its text, or parsed when the text is unusual); chunks that start with
 * it are spliced, others are re-serialised.
 * It also measures, roughly, how much text was relayed (for estimates when a stream ends without
 * usage): the characters of all chunks minus the smallest chunk's size, taken as the envelope.
 */
export class ChunkDecorator {
  #prefix: string | undefined;
  readonly #replacement: string;
  #splice = true;
  #totalChars = 0;
  #chunks = 0;
  #minChunk = Infinity;

  constructor(
    private readonly generationId: string,
    private readonly provider: string,
  ) {
    this.#replacement = `{"id":${JSON.stringify(generationId)},"provider":${JSON.stringify(provider)}`;
  }

  /**
   * One chunk's JSON text → the text to relay, or undefined when the text is not a JSON object
   * (an upstream sending garbage: the relay ends the stream with an error instead of passing it
   * on). Chunks on the usual shape are checked structurally (the known prefix and a closing
   * brace); others are parsed.
   */
  decorate(data: string): string | undefined {
    this.#measure(data);
    if (this.#prefix === undefined && this.#splice) this.#learn(data);
    if (this.#splice && this.#prefix !== undefined && data.startsWith(this.#prefix) && data.charCodeAt(data.length - 1) === 0x7d) {
      return this.#replacement + data.slice(this.#prefix.length);
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return undefined;
    }
    return isObject(chunk) ? this.#serialise(chunk) : undefined;
  }

  /** The chunk that carries the usage (`data`, and `chunk` its parse): rewritten as a whole answer is, with `usage.cost`. */
  withCost(data: string, chunk: Body, costNano: number, usage: IRUsage): string {
    return decorateCompletion(data, chunk, this.generationId, this.provider, costNano, usage);
  }

  /** Characters of relayed text, roughly (see the class comment). */
  relayedTextChars(): number {
    return this.#chunks === 0 ? 0 : Math.max(0, this.#totalChars - this.#chunks * this.#minChunk);
  }

  #measure(data: string): void {
    this.#totalChars += data.length;
    this.#chunks++;
    if (data.length < this.#minChunk) this.#minChunk = data.length;
  }

  #learn(data: string): void {
    // The usual first chunk, led by its id with no escape and with no "provider" key anywhere,
    // is read as text; anything else is parsed.
    const lead = data.includes('"provider"') ? undefined : leadingId(data);
    if (lead !== undefined) {
      this.#prefix = data.slice(0, lead.end);
      return;
    }
    let first: unknown;
    try {
      first = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObject(first) || typeof first.id !== 'string' || first.provider !== undefined) {
      this.#splice = false;
      return;
    }
    this.#prefix = `{"id":${JSON.stringify(first.id)}`;
  }

  #serialise(chunk: Body): string {
    const { id: _id, provider: _p, ...rest } = chunk;
    return JSON.stringify({ id: this.generationId, provider: this.provider, ...rest });
  }
}
