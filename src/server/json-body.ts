/**
 * The JSON request body parser: UTF-8 (RFC 8259), bounded nesting depth and container sizes,
 * no prototype keys. Every refusal is a 400 in OpenAI's error shape.
 *
 * The one pass over the bytes that enforces the bounds also notes where the top-level object's
 * members are, so a handler that forwards the body nearly unchanged (same dialect) can send the
 * client's own bytes with one value replaced instead of serialising the parsed object again
 * (`rawJsonOf`, `rewriteRawJson`).
 */
import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../ir/errors.js';

export interface JsonBodyLimits {
  /** Deepest nesting of arrays and objects. */
  maxDepth: number;
  /** Most elements of one array, or members of one object. */
  maxItems: number;
}

/**
 * The bytes of a parsed top-level object and where its parts are. Offsets are byte offsets
 * into `bytes`.
 */
export interface RawJsonObject {
  readonly bytes: Buffer;
  /** Members written in the top-level object, duplicates included. */
  readonly members: number;
  /** Keys written in all objects at every depth, duplicates included. */
  readonly keys: number;
  /** The top-level `"model"` member's value when it is a string: [start, end) including its quotes; -1 otherwise. */
  readonly modelStart: number;
  readonly modelEnd: number;
  /** Offset of the top-level object's closing brace. */
  readonly closeAt: number;
}

const OPEN_ARRAY = 0x5b; // [
const OPEN_OBJECT = 0x7b; // {
const CLOSE_ARRAY = 0x5d; // ]
const CLOSE_OBJECT = 0x7d; // }
const COMMA = 0x2c;
const COLON = 0x3a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MODEL = Buffer.from('model');

function tooDeep(limits: JsonBodyLimits): GatewayError {
  return new GatewayError('MR_ERR_INVALID_REQUEST', `The request body nests arrays and objects deeper than ${limits.maxDepth} levels.`);
}

function tooManyItems(limits: JsonBodyLimits): GatewayError {
  return new GatewayError(
    'MR_ERR_INVALID_REQUEST',
    `The request body has an array or object with more than ${limits.maxItems} items.`,
  );
}

const invalidJson = () => new GatewayError('MR_ERR_INVALID_JSON', 'The request body is not valid JSON.');

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Checks nesting depth and container sizes on the raw bytes, before anything is parsed: V8's
 * JSON.parse takes about a second per million levels of nesting, and what it builds would then
 * overflow the stack of any recursive code after it. One pass; string contents are skipped with
 * `indexOf`. Malformed JSON passes through to JSON.parse, which reports it (so what is learned
 * about the layout is only trusted once JSON.parse accepted the same bytes).
 *
 * Returns the layout of a top-level object, or undefined when the top level is not an object.
 */
function scanJsonShape(buf: Buffer, limits: JsonBodyLimits): RawJsonObject | undefined {
  const items: number[] = [];
  // Per depth: 1 when that container is an object whose next string is a key (after `{` or
  // `,`), 2 when it is an object whose next string is a value, 0 for an array.
  const keyState: number[] = [0];
  let depth = 0;
  let keys = 0;
  let members = 0;
  let afterModelKey = false; // the last top-level key was "model"
  let modelStart = -1;
  let modelEnd = -1;
  let closeAt = -1;
  let topIsObject = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === QUOTE) {
      // Skip to the closing quote: one preceded by an even number of backslashes.
      let j = i;
      for (;;) {
        j = buf.indexOf(QUOTE, j + 1);
        if (j < 0) return undefined; // unterminated string: JSON.parse rejects it
        let k = j - 1;
        while (buf[k] === BACKSLASH) k--;
        if ((j - 1 - k) % 2 === 0) break;
      }
      if (keyState[depth] === 1) {
        keyState[depth] = 2;
        keys++;
        if (depth === 1) {
          members++;
          afterModelKey = j - i - 1 === MODEL.length && buf.compare(MODEL, 0, MODEL.length, i + 1, j) === 0;
        }
      } else if (depth === 1 && afterModelKey) {
        // A string right after `"model"` and its colon is that member's value.
        let k = i - 1;
        while (isSpace(buf[k])) k--;
        if (buf[k] === COLON) {
          modelStart = i;
          modelEnd = j + 1;
        }
        afterModelKey = false;
      }
      i = j;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (depth === 0) topIsObject = c === OPEN_OBJECT;
      if (++depth > limits.maxDepth) throw tooDeep(limits);
      items[depth] = 0;
      keyState[depth] = c === OPEN_OBJECT ? 1 : 0;
      if (depth === 2) afterModelKey = false;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (--depth < 0) throw invalidJson();
      if (depth === 0) closeAt = i;
    } else if (c === COMMA && depth > 0) {
      // n commas separate n + 1 items.
      if (++items[depth]! >= limits.maxItems) throw tooManyItems(limits);
      if (keyState[depth] === 2) keyState[depth] = 1;
      if (depth === 1) afterModelKey = false;
    }
  }
  if (!topIsObject || closeAt < 0) return undefined;
  return { bytes: buf, members, keys, modelStart, modelEnd, closeAt };
}

/** Calls `visit` with every object (not array) in a parsed JSON value, the root included. */
function eachObject(root: object, visit: (o: Record<string, unknown>) => void): void {
  const stack: object[] = [root];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (Array.isArray(v)) {
      for (const x of v) if (typeof x === 'object' && x !== null) stack.push(x);
      continue;
    }
    const o = v as Record<string, unknown>;
    visit(o);
    for (const k in o) {
      const x = o[k];
      if (typeof x === 'object' && x !== null) stack.push(x);
    }
  }
}

/**
 * Keys that would reach an object's prototype if the parsed body were merged into another
 * object (`__proto__`, `constructor.prototype`): refused, as Fastify's own parser does.
 */
function refusePrototypeKeys(root: unknown): void {
  if (typeof root !== 'object' || root === null) return;
  eachObject(root, (o) => {
    if (Object.hasOwn(o, '__proto__')) {
      throw new GatewayError('MR_ERR_INVALID_REQUEST', "The request body has a '__proto__' key, which is not accepted.");
    }
    const c = Object.hasOwn(o, 'constructor') ? o.constructor : undefined;
    if (typeof c === 'object' && c !== null && Object.hasOwn(c, 'prototype')) {
      throw new GatewayError('MR_ERR_INVALID_REQUEST', "The request body has a 'constructor.prototype' key, which is not accepted.");
    }
  });
}

/** A parsed body, and the layout of its bytes when it is an object. */
export interface ParsedJsonBody {
  value: unknown;
  raw: RawJsonObject | undefined;
}

/**
 * The JSON request body parser: UTF-8 (RFC 8259), at most `maxDepth` levels and `maxItems`
 * items per container, no prototype keys. Every refusal is a 400 in OpenAI's error shape.
 */
export function parseJsonBody(buf: Buffer, limits: JsonBodyLimits): ParsedJsonBody {
  if (buf.length === 0) throw new GatewayError('MR_ERR_INVALID_JSON', 'The request body is empty; a JSON object is required.');
  if (!isUtf8(buf)) throw new GatewayError('MR_ERR_INVALID_JSON', 'The request body is not valid UTF-8.');
  const raw = scanJsonShape(buf, limits);
  const text = buf.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // V8's message quotes the body: never passed on.
    throw invalidJson();
  }
  // A key can only read `__proto__` or `constructor` if those letters are in the text, or if
  // the text has a \u escape (JSON can escape a letter no other way): otherwise no walk.
  // (Searched in the string: eight times cheaper than in the Buffer for a small body.)
  if (text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')) refusePrototypeKeys(value);
  return { value, raw };
}

/**
 * `raw` (the layout `parseJsonBody` returned with `body`) when its bytes can stand for `body`:
 * no key written twice in any object (JSON.parse keeps the last of duplicated keys, an upstream
 * might keep the first — and what the gateway checked, e.g. for upstream overrides, must be
 * what the upstream reads), so the parsed object and the bytes say the same. Undefined
 * otherwise. Counts the parsed object's keys, which is cheaper than serialising it.
 */
export function rawJsonOf(body: object, raw: RawJsonObject | undefined): RawJsonObject | undefined {
  if (raw === undefined || raw.members !== Object.keys(body).length || raw.keys !== countKeys(body)) return undefined;
  return raw;
}

/** Own keys of every object in a parsed JSON value. */
function countKeys(root: object): number {
  let n = 0;
  eachObject(root, (o) => {
    for (const _ in o) n++;
  });
  return n;
}

/**
 * The body's bytes with the top-level `model` value replaced and, when `appendJson` is given
 * (e.g. `"stream_options":{…}`), a member appended. Undefined when the layout does not allow
 * it (no string `model` member), so the caller serialises instead.
 */
export function rewriteRawJson(raw: RawJsonObject, model: string, appendMember?: string): Buffer | undefined {
  if (raw.modelStart < 0) return undefined;
  const { bytes } = raw;
  const value = Buffer.from(JSON.stringify(model));
  if (appendMember === undefined) {
    return Buffer.concat([bytes.subarray(0, raw.modelStart), value, bytes.subarray(raw.modelEnd)]);
  }
  // The object has at least the model member, so the appended one follows a comma.
  return Buffer.concat([
    bytes.subarray(0, raw.modelStart),
    value,
    bytes.subarray(raw.modelEnd, raw.closeAt),
    Buffer.from(`,${appendMember}`),
    bytes.subarray(raw.closeAt),
  ]);
}
