/**
 * The fault matrix: one upstream fault at a time, injected at the first endpoint (mock A) of a
 * model whose second endpoint (mock B) is healthy, and, where it changes the outcome, at the only
 * endpoint of a model. Each row drives the running gateway with the official `openai` SDK,
 * non-streamed and streamed, and checks what the request cost and what the client saw:
 *
 * - the attempts made: requests each mock received, and `x-maxrouter-attempts`;
 * - the endpoint that served (or was tried last): `x-maxrouter-provider` and the `provider` field;
 * - the ending the client sees: an answer, an SDK error class with its status and code, or a
 *   stream that ends with an OpenAI-shaped error event and no `[DONE]` (a failure after the first
 *   byte, never retried);
 * - the usage row recorded: status, provider, tokens.
 *
 * Retries follow docs/routing.md#retries with the time budget shortened to 3 s. Every test gets
 * its own gateway and mocks, so that breakers, usage rows and request counts start from zero.
 */
import OpenAI, { APIError, InternalServerError, RateLimitError } from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openaiError, openaiText, openaiTextStream } from '../fixtures/openai.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockReply, type MockUpstream } from '../helpers/mock-upstream.js';

type Chunk = OpenAI.Chat.Completions.ChatCompletionChunk;
type Completion = OpenAI.Chat.Completions.ChatCompletion;
type EndpointName = 'a' | 'b';

const TIMEOUTS = { connect: 500, headers: 300, body: 300 };
/** The longest `retry-after` waited for; 60 s is beyond it, 1 s within. */
const MAX_RETRY_AFTER_MS = 2_000;
/** Full-jitter ceiling of the first retry without `retry-after`: min(cap 4 s, base 250 ms × 2⁰). */
const FIRST_BACKOFF_CEILING_MS = 250;
/** Room for the gateway's own work between an upstream failure and the next attempt, ms. */
const SLACK_MS = 150;
/**
 * undici checks headers and body timeouts on a tick of about half a second: a 300 ms timeout
 * fires between 0.5 and 1 s after the upstream went quiet.
 */
const TIMEOUT_FIRES_WITHIN_MS = 1_000;

/** Two endpoints, A before B: A's weight makes it first except once in a million draws. */
const TWO = 'fault/two';
/** A alone. */
const ONE = 'fault/one';

/** A mock that records when each request arrived and answers from a script, then with `fallback`. */
interface Upstream {
  mock: MockUpstream;
  /** performance.now() at each request's arrival. */
  times: number[];
  script(replies: MockReply[]): void;
}

async function upstream(name: EndpointName): Promise<Upstream> {
  const mock = await startMockUpstream();
  const times: number[] = [];
  let queue: MockReply[] = [];
  mock.setDefault((req) => {
    times.push(performance.now());
    return queue.shift() ?? ok(name, req.json?.stream === true);
  });
  return { mock, times, script: (replies) => void (queue = [...replies]) };
}

// ------------------------------------------------------------------------------------------
// Upstream replies
// ------------------------------------------------------------------------------------------

/** A healthy answer naming its endpoint: 12 + 5 tokens non-streamed, 9 + 2 streamed. */
function ok(name: EndpointName, stream: boolean): MockReply {
  return stream ? openaiTextStream(['from', ` ${name}`]) : openaiText({ text: `from ${name}` });
}

const rateLimited = (retryAfter?: number): MockReply =>
  openaiError(429, 'Rate limit reached for requests', 'requests', 'rate_limit_exceeded', retryAfter === undefined ? undefined : { 'retry-after': String(retryAfter) });
const serverError = (): MockReply => openaiError(500, 'The server had an error while processing your request.', 'server_error');
const unavailable = (): MockReply => openaiError(503, 'The engine is currently overloaded.', 'server_error');
const hang = (): MockReply => ({ hang: true });
const resetBeforeHeaders = (): MockReply => ({ resetBeforeHeaders: true });

/** A stream that sends its role chunk and 'Hel', then stops writing (the connection stays open). */
const hangMidStream = (): MockReply => ({ ...openaiTextStream(['Hel', 'lo', ' world']), hangAfterEvents: 2 });
/** A stream that sends its role chunk and 'Hel', then drops the connection. */
const resetMidStream = (): MockReply => ({ ...openaiTextStream(['Hel', 'lo', ' world']), resetAfterEvents: 2 });
/** Every frame 100 ms after the previous one: 700 ms in all, each gap within the 300 ms idle timeout. */
const slowStream = (): MockReply => ({ ...openaiTextStream(['slow', ' but', ' fine']), sseDelayMs: 100 });

/** A 200 JSON answer whose body arrives in three pieces, `opts` deciding how they are sent. */
function jsonInPieces(name: EndpointName, opts: Pick<MockReply, 'sseDelayMs' | 'hangAfterEvents' | 'resetAfterEvents'>): MockReply {
  const text = JSON.stringify((ok(name, false) as { json: unknown }).json);
  const third = Math.ceil(text.length / 3);
  return {
    status: 200,
    headers: { 'content-type': 'application/json' },
    sse: [text.slice(0, third), text.slice(third, 2 * third), text.slice(2 * third)],
    ...opts,
  };
}

// ------------------------------------------------------------------------------------------
// The client side
// ------------------------------------------------------------------------------------------

interface Outcome {
  /** HTTP status of the answer (undefined when the SDK threw without one). */
  status: number | undefined;
  headers: Headers | undefined;
  /** The text received (streamed: the deltas that arrived before any error). */
  text: string;
  /** The `provider` field of the answer, or of the stream's chunks. */
  provider: string | undefined;
  /** What the SDK threw, from `create` or while iterating the stream. */
  error: unknown;
  /** The stream's raw body as the gateway sent it. */
  raw: string | undefined;
  elapsedMs: number;
}

async function request(t: TestGateway, model: string, stream: boolean): Promise<Outcome> {
  const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Hello' }];
  const started = performance.now();
  const failed = (error: unknown): Outcome => {
    if (!(error instanceof APIError)) throw error;
    return { status: error.status, headers: error.headers, text: '', provider: undefined, error, raw: undefined, elapsedMs: performance.now() - started };
  };
  if (!stream) {
    try {
      const { data, response } = await t.client.chat.completions.create({ model, messages }).withResponse();
      const provider = (data as Completion & { provider?: string }).provider;
      return { status: response.status, headers: response.headers, text: data.choices[0]?.message.content ?? '', provider, error: undefined, raw: undefined, elapsedMs: performance.now() - started };
    } catch (error) {
      return failed(error);
    }
  }
  let opened: Awaited<ReturnType<typeof openStream>>;
  try {
    opened = await openStream(t, model, messages);
  } catch (error) {
    return failed(error);
  }
  const { data, response } = opened;
  const raw = response.clone().text(); // the SDK reads the original; this copy keeps the bytes
  let text = '';
  let provider: string | undefined;
  let error: unknown;
  try {
    for await (const chunk of data) {
      text += chunk.choices[0]?.delta.content ?? '';
      provider ??= (chunk as Chunk & { provider?: string }).provider;
    }
  } catch (err) {
    error = err;
  }
  return { status: response.status, headers: response.headers, text, provider, error, raw: await raw, elapsedMs: performance.now() - started };
}

function openStream(t: TestGateway, model: string, messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[]) {
  return t.client.chat.completions.create({ model, messages, stream: true }).withResponse();
}

// ------------------------------------------------------------------------------------------
// The matrix
// ------------------------------------------------------------------------------------------

type Ending =
  /**
   * A 200 answer from this endpoint: by default its healthy reply (`from a`, 12 + 5 tokens
   * non-streamed, 9 + 2 streamed), else the text and completion tokens given.
   */
  | { kind: 'answer'; from: EndpointName; text?: string; completionTokens?: number }
  /** An HTTP error: the SDK class, status and gateway code (and `retry-after` when expected). */
  | { kind: 'http-error'; cls: typeof RateLimitError | typeof InternalServerError; status: number; code: string; retryAfter?: string }
  /** A 200 stream cut short: `partial` arrived, then an error event with `code`, no `[DONE]`. */
  | { kind: 'stream-error'; code: string; partial: string };

interface Row {
  name: string;
  model: typeof ONE | typeof TWO;
  /** Which modes the row applies to. */
  modes: readonly ('non-stream' | 'stream')[];
  /** A's replies in order (then healthy ones). */
  a: (stream: boolean) => MockReply[];
  /** B's replies in order (then healthy ones). */
  b?: (stream: boolean) => MockReply[];
  /** Requests A and B receive. */
  requests: { a: number; b: number };
  /** `x-maxrouter-attempts`. */
  attempts: number;
  /**
   * The endpoint that answered, or was tried last (`x-maxrouter-provider`); `either` when two
   * failing endpoints were retried and the last one depends on their random backoffs.
   */
  provider: EndpointName | 'either';
  ending: Ending;
  /** The usage row's status (200 for an answer). */
  usageStatus: number;
  /** Bounds of the time between A's first and second request, ms. */
  retryGapMs?: { min?: number; max?: number };
  /** The whole request took less than this, ms (e.g. no 1 s wait when another endpoint is there). */
  maxElapsedMs?: number;
}

const BOTH = ['non-stream', 'stream'] as const;
const fixed = (replies: MockReply[]) => () => replies;

/** Faults that happen before the first byte: the same in both modes, failing over to B. */
const failoverRows: Row[] = (
  [
    ['429 with retry-after: 1 (B at once, no wait)', () => [rateLimited(1)], { maxElapsedMs: 800 }],
    ['429 without retry-after', () => [rateLimited()], {}],
    ['429 with retry-after: 60 (beyond maxRetryAfterMs)', () => [rateLimited(60)], {}],
    ['500', () => [serverError()], {}],
    ['503', () => [unavailable()], {}],
    ['hang before headers (headers timeout)', () => [hang()], { maxElapsedMs: TIMEOUT_FIRES_WITHIN_MS + 500 }],
    ['connection reset before the first byte', () => [resetBeforeHeaders()], {}],
  ] as const
).map(([name, a, extra]) => ({
  name: `A: ${name} → B serves`,
  model: TWO,
  modes: BOTH,
  a,
  requests: { a: 1, b: 1 },
  attempts: 2,
  provider: 'b',
  ending: { kind: 'answer', from: 'b' },
  usageStatus: 200,
  ...extra,
}));

const rows: Row[] = [
  ...failoverRows,

  // After the first byte: the stream ends with an error event; no retry, no failover.
  {
    name: 'A: hang mid-stream (body idle timeout) → error event, B untouched',
    model: TWO,
    modes: ['stream'],
    a: fixed([hangMidStream()]),
    requests: { a: 1, b: 0 },
    attempts: 1,
    provider: 'a',
    ending: { kind: 'stream-error', code: 'MR_ERR_UPSTREAM_TIMEOUT', partial: 'Hel' },
    usageStatus: 504,
  },
  {
    name: 'A: connection reset mid-stream → error event, B untouched',
    model: TWO,
    modes: ['stream'],
    a: fixed([resetMidStream()]),
    requests: { a: 1, b: 0 },
    attempts: 1,
    provider: 'a',
    ending: { kind: 'stream-error', code: 'MR_ERR_UPSTREAM_ERROR', partial: 'Hel' },
    usageStatus: 502,
  },
  // A non-streamed body is read whole before anything is sent: the same faults still fail over.
  {
    name: 'A: JSON body stops mid-way (body idle timeout) → B serves',
    model: TWO,
    modes: ['non-stream'],
    a: fixed([jsonInPieces('a', { hangAfterEvents: 1 })]),
    requests: { a: 1, b: 1 },
    attempts: 2,
    provider: 'b',
    ending: { kind: 'answer', from: 'b' },
    usageStatus: 200,
  },
  {
    name: 'A: connection reset mid-way through a JSON body → B serves',
    model: TWO,
    modes: ['non-stream'],
    a: fixed([jsonInPieces('a', { resetAfterEvents: 1 })]),
    requests: { a: 1, b: 1 },
    attempts: 2,
    provider: 'b',
    ending: { kind: 'answer', from: 'b' },
    usageStatus: 200,
  },
  // Slow but within the idle timeout: served by A, no retry.
  {
    name: 'A: slow but healthy stream (frames 100 ms apart) → A serves, no retry',
    model: TWO,
    modes: ['stream'],
    a: fixed([slowStream()]),
    requests: { a: 1, b: 0 },
    attempts: 1,
    provider: 'a',
    ending: { kind: 'answer', from: 'a', text: 'slow but fine', completionTokens: 3 },
    usageStatus: 200,
  },
  {
    name: 'A: slow but healthy JSON body (pieces 100 ms apart) → A serves, no retry',
    model: TWO,
    modes: ['non-stream'],
    a: fixed([jsonInPieces('a', { sseDelayMs: 100 })]),
    requests: { a: 1, b: 0 },
    attempts: 1,
    provider: 'a',
    ending: { kind: 'answer', from: 'a' },
    usageStatus: 200,
  },
  // Both endpoints fail every time: each is tried twice, and the client gets the last error.
  {
    name: 'A and B: 500 every time → each tried twice, 502 to the client',
    model: TWO,
    modes: BOTH,
    a: fixed([serverError(), serverError()]),
    b: fixed([serverError(), serverError()]),
    requests: { a: 2, b: 2 },
    attempts: 4,
    provider: 'either',
    ending: { kind: 'http-error', cls: InternalServerError, status: 502, code: 'MR_ERR_UPSTREAM_ERROR' },
    usageStatus: 502,
  },

  // A single endpoint: retried once, after retry-after or a backoff.
  {
    name: 'single endpoint: 429 with retry-after: 1 → retried ≥ 1 s later, A serves',
    model: ONE,
    modes: BOTH,
    a: fixed([rateLimited(1)]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'answer', from: 'a' },
    usageStatus: 200,
    retryGapMs: { min: 950, max: 1000 + 4 * SLACK_MS },
  },
  {
    name: 'single endpoint: 429 without retry-after → retried after a backoff below its ceiling, A serves',
    model: ONE,
    modes: BOTH,
    a: fixed([rateLimited()]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'answer', from: 'a' },
    usageStatus: 200,
    retryGapMs: { max: FIRST_BACKOFF_CEILING_MS + SLACK_MS },
  },
  {
    name: 'single endpoint: 429 with retry-after: 60 → not retried, 429 with retry-after to the client',
    model: ONE,
    modes: BOTH,
    a: fixed([rateLimited(60)]),
    requests: { a: 1, b: 0 },
    attempts: 1,
    provider: 'a',
    ending: { kind: 'http-error', cls: RateLimitError, status: 429, code: 'MR_ERR_UPSTREAM_RATE_LIMITED', retryAfter: '60' },
    usageStatus: 429,
    maxElapsedMs: 800,
  },
  {
    name: 'single endpoint: 429 twice without retry-after → 429 to the client',
    model: ONE,
    modes: BOTH,
    a: fixed([rateLimited(), rateLimited()]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'http-error', cls: RateLimitError, status: 429, code: 'MR_ERR_UPSTREAM_RATE_LIMITED' },
    usageStatus: 429,
  },
  {
    name: 'single endpoint: 500 twice → 502 to the client',
    model: ONE,
    modes: BOTH,
    a: fixed([serverError(), serverError()]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'http-error', cls: InternalServerError, status: 502, code: 'MR_ERR_UPSTREAM_ERROR' },
    usageStatus: 502,
  },
  {
    name: 'single endpoint: 503 then an answer → A serves on the retry',
    model: ONE,
    modes: BOTH,
    a: fixed([unavailable()]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'answer', from: 'a' },
    usageStatus: 200,
  },
  {
    name: 'single endpoint: 503 twice → 503 to the client',
    model: ONE,
    modes: BOTH,
    a: fixed([unavailable(), unavailable()]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'http-error', cls: InternalServerError, status: 503, code: 'MR_ERR_UPSTREAM_UNAVAILABLE' },
    usageStatus: 503,
  },
  {
    name: 'single endpoint: hang before headers twice → 504 to the client',
    model: ONE,
    modes: BOTH,
    a: fixed([hang(), hang()]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'http-error', cls: InternalServerError, status: 504, code: 'MR_ERR_UPSTREAM_TIMEOUT' },
    usageStatus: 504,
    maxElapsedMs: 2 * TIMEOUT_FIRES_WITHIN_MS + FIRST_BACKOFF_CEILING_MS + 500,
  },
  {
    name: 'single endpoint: reset before the first byte, then an answer → A serves on the retry',
    model: ONE,
    modes: BOTH,
    a: fixed([resetBeforeHeaders()]),
    requests: { a: 2, b: 0 },
    attempts: 2,
    provider: 'a',
    ending: { kind: 'answer', from: 'a' },
    usageStatus: 200,
  },
  {
    name: 'single endpoint: hang mid-stream → error event, not retried',
    model: ONE,
    modes: ['stream'],
    a: fixed([hangMidStream()]),
    requests: { a: 1, b: 0 },
    attempts: 1,
    provider: 'a',
    ending: { kind: 'stream-error', code: 'MR_ERR_UPSTREAM_TIMEOUT', partial: 'Hel' },
    usageStatus: 504,
  },
];

describe('fault matrix', () => {
  let a: Upstream;
  let b: Upstream;
  let t: TestGateway;

  beforeEach(async () => {
    a = await upstream('a');
    b = await upstream('b');
    t = await startTestGateway({
      providers: [
        { id: 'a', type: 'openai', baseUrl: `${a.mock.url}/v1`, apiKey: 'sk-a', timeouts: TIMEOUTS },
        { id: 'b', type: 'openai', baseUrl: `${b.mock.url}/v1`, apiKey: 'sk-b', timeouts: TIMEOUTS },
      ],
      models: [
        {
          id: TWO,
          endpoints: [
            { provider: 'a', model: 'model-a', weight: 1_000_000, pricing: { input: 1, output: 2 } },
            { provider: 'b', model: 'model-b', weight: 1, pricing: { input: 1, output: 2 } },
          ],
        },
        { id: ONE, endpoints: [{ provider: 'a', model: 'model-a', pricing: { input: 1, output: 2 } }] },
      ],
      // The documented defaults, with a 3 s budget and a 2 s ceiling on retry-after waits.
      retries: { attemptsPerEndpoint: 2, maxAttempts: 5, timeBudgetMs: 3_000, maxRetryAfterMs: MAX_RETRY_AFTER_MS },
      // Real breakers, but no test here fails an endpoint often enough to open one.
      circuitBreaker: { failureThreshold: 5, coolDownMs: 30_000 },
    });
  });
  afterEach(async () => {
    await t.close();
    await a.mock.close();
    await b.mock.close();
  });

  for (const row of rows) {
    for (const mode of row.modes) {
      const stream = mode === 'stream';
      it(`${row.name} [${mode}]`, async () => {
        a.script(row.a(stream));
        b.script(row.b?.(stream) ?? []);
        const out = await request(t, row.model, stream);

        // The attempts made.
        expect({ a: a.mock.requests.length, b: b.mock.requests.length }).toEqual(row.requests);
        expect(out.headers?.get('x-maxrouter-attempts')).toBe(String(row.attempts));
        for (const r of [...a.mock.requests, ...b.mock.requests]) expect(r.json.stream === true).toBe(stream);

        // The endpoint that served, or was tried last.
        const lastTried = row.provider === 'either' ? ['a', 'b'] : [row.provider];
        expect(lastTried).toContain(out.headers?.get('x-maxrouter-provider'));

        // What the client saw.
        const ending = row.ending;
        if (ending.kind === 'answer') {
          expect(out.error).toBeUndefined();
          expect(out.status).toBe(200);
          expect(out.provider).toBe(ending.from);
          expect(out.headers?.get('x-maxrouter-provider')).toBe(ending.from);
          expect(out.text).toBe(ending.text ?? `from ${ending.from}`);
          if (stream) expect(sseData(out.raw!).at(-1)).toBe('[DONE]');
        } else if (ending.kind === 'http-error') {
          expect(out.error).toBeInstanceOf(ending.cls);
          const err = out.error as APIError;
          expect(err.status).toBe(ending.status);
          expect(err.code).toBe(ending.code);
          expect(err.type).toBeTypeOf('string');
          if (ending.retryAfter !== undefined) expect(out.headers?.get('retry-after')).toBe(ending.retryAfter);
        } else {
          expect(out.status).toBe(200);
          expect(out.text).toBe(ending.partial);
          expect(out.provider).toBe('a');
          // The SDK turns the error event into an APIError without an HTTP status.
          expect(out.error).toBeInstanceOf(APIError);
          const err = out.error as APIError;
          expect(err.status).toBeUndefined();
          expect(err.code).toBe(ending.code);
          // On the wire: the error event, OpenAI-shaped, is the last one, and there is no [DONE].
          const events = sseData(out.raw!);
          expect(events).not.toContain('[DONE]');
          const last = JSON.parse(events.at(-1)!) as { error: Record<string, unknown> };
          expect(Object.keys(last)).toEqual(['error']);
          expect(last.error).toMatchObject({ code: ending.code, param: null, type: expect.any(String), message: expect.stringContaining("'a'") });
        }

        // Timing.
        if (row.retryGapMs) {
          const gap = a.times[1]! - a.times[0]!;
          if (row.retryGapMs.min !== undefined) expect(gap).toBeGreaterThanOrEqual(row.retryGapMs.min);
          if (row.retryGapMs.max !== undefined) expect(gap).toBeLessThan(row.retryGapMs.max);
        }
        if (row.maxElapsedMs !== undefined) expect(out.elapsedMs).toBeLessThan(row.maxElapsedMs);

        // The usage row: one per request, naming the endpoint that served or was tried last.
        const usage = await t.usage();
        expect(usage).toHaveLength(1);
        const u = usage[0]!;
        expect(u).toMatchObject({ model: row.model, status: row.usageStatus, streamed: stream });
        expect(lastTried).toContain(u.provider);
        expect(u.upstreamModel).toBe(`model-${u.provider}`);
        if (ending.kind === 'answer') {
          const tokens = stream ? { promptTokens: 9, completionTokens: ending.completionTokens ?? 2 } : { promptTokens: 12, completionTokens: ending.completionTokens ?? 5 };
          expect(u).toMatchObject({ provider: ending.from, ...tokens, costEstimated: false });
          expect(u.costNano).toBeGreaterThan(0);
        } else if (ending.kind === 'http-error') {
          // Nothing was generated: nothing is billed.
          expect(u).toMatchObject({ promptTokens: 0, completionTokens: 0, costNano: 0 });
        } else {
          // Cut short without the provider's usage: billed on an estimate of what was relayed.
          expect(u).toMatchObject({ provider: 'a', costEstimated: true });
          expect(u.promptTokens).toBeGreaterThan(0);
          expect(u.completionTokens).toBeGreaterThan(0);
        }
      });
    }
  }
});

describe('a client that goes away while a retry waits', () => {
  let a: Upstream;
  let t: TestGateway;

  beforeEach(async () => {
    a = await upstream('a');
    t = await startTestGateway({
      providers: [{ id: 'a', type: 'openai', baseUrl: `${a.mock.url}/v1`, apiKey: 'sk-a', timeouts: TIMEOUTS }],
      models: [{ id: ONE, endpoints: [{ provider: 'a', model: 'model-a' }] }],
      retries: { attemptsPerEndpoint: 2, maxAttempts: 5, timeBudgetMs: 3_000, maxRetryAfterMs: MAX_RETRY_AFTER_MS },
      circuitBreaker: { failureThreshold: 5, coolDownMs: 30_000 },
    });
  });
  afterEach(async () => {
    await t.close();
    await a.mock.close();
  });

  for (const stream of [false, true]) {
    it(`cancels the retry: A is not asked again, and the usage row says 499 [${stream ? 'stream' : 'non-stream'}]`, async () => {
      a.script([rateLimited(1)]);
      const controller = new AbortController();
      const pending = t.client.chat.completions.create({ model: ONE, messages: [{ role: 'user', content: 'Hello' }], stream }, { signal: controller.signal });
      await new Promise((r) => setTimeout(r, 300)); // A answered 429; the gateway waits 1 s
      expect(a.mock.requests).toHaveLength(1);
      controller.abort();
      await expect(pending).rejects.toThrow(/abort/i);
      await new Promise((r) => setTimeout(r, 1_000)); // past the retry's time
      expect(a.mock.requests).toHaveLength(1);
      const usage = await t.usage();
      expect(usage).toHaveLength(1);
      expect(usage[0]).toMatchObject({ model: ONE, provider: 'a', status: 499, promptTokens: 0, completionTokens: 0 });
    });
  }
});

/** The `data:` payloads of an SSE body, in order. */
function sseData(raw: string): string[] {
  return raw
    .split(/\n\n/)
    .map((frame) => frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'))
    .filter((d) => d !== '');
}
