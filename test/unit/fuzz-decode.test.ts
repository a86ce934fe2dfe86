/**
 * Property-based tests of request decoding: whatever JSON value or byte string a client sends to
 * POST /v1/chat/completions or /v1/embeddings, the answer is a 4xx in OpenAI's error shape —
 * never a 5xx, never a crash; and `decodeChatRequest` refuses any malformed body with a 400
 * GatewayError and nothing else.
 *
 * Requests that happen to be valid reach a mock upstream that refuses everything with a 400 in
 * its own dialect, so "4xx" holds for them too while the translation paths (Anthropic chat,
 * Gemini embeddings) still run.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeChatRequest } from '../../src/api/openai/decode-request.js';
import { GatewayError } from '../../src/ir/errors.js';
import { anthropicInvalidRequestError } from '../fixtures/anthropic.js';
import { openaiError } from '../fixtures/openai.js';
import { startMockUpstream, type MockUpstream, type MockReply } from '../helpers/mock-upstream.js';
import { assertSchema } from '../helpers/openai-schema.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const CHAT_MODELS = ['fz/openai', 'fz/anthropic'];
const EMBED_MODELS = ['fz/embed', 'fz/gembed'];
const PATHS = ['/v1/chat/completions', '/v1/embeddings'] as const;

/** Fields the decoders look at, and a few that JavaScript objects have on their prototype. */
const CHAT_FIELDS = [
  'model', 'messages', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'stop',
  'seed', 'user', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'reasoning_effort', 'n', 'logprobs',
  'top_logprobs', 'logit_bias', 'metadata', 'service_tier', 'store', 'functions', 'audio', 'provider', 'models',
  'extra_body', 'api_base', 'input', 'encoding_format', 'dimensions', 'toString', 'constructor', 'hasOwnProperty',
];

const anyJson = fc.jsonValue({ maxDepth: 4 });

/** Mostly a well-formed value, sometimes any JSON at all. */
const mostly = <T,>(valid: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: valid, weight: 5 }, { arbitrary: anyJson as fc.Arbitrary<unknown>, weight: 1 });

const contentPart = fc.record(
  {
    type: mostly(fc.constantFrom('text', 'image_url', 'refusal', 'input_audio', 'file')),
    text: mostly(fc.string()),
    refusal: mostly(fc.string()),
    image_url: mostly(
      fc.record(
        {
          url: fc.oneof(fc.constantFrom('https://example.com/a.png', 'data:image/png;base64,iVBORw0K', 'http://x', 'data:'), fc.string()),
          detail: mostly(fc.constantFrom('auto', 'low', 'high')),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: [] },
);

const toolCall = fc.record(
  {
    id: mostly(fc.string()),
    type: mostly(fc.constant('function')),
    function: mostly(fc.record({ name: mostly(fc.string()), arguments: mostly(fc.string()) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);

const message = fc.record(
  {
    role: mostly(fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool', 'function')),
    content: mostly(fc.oneof(fc.string(), fc.array(contentPart, { maxLength: 3 }))),
    name: mostly(fc.string()),
    tool_call_id: mostly(fc.string()),
    tool_calls: mostly(fc.array(toolCall, { maxLength: 2 })),
  },
  { requiredKeys: ['role', 'content'] },
);

const tool = fc.record(
  {
    type: mostly(fc.constant('function')),
    function: mostly(
      fc.record(
        {
          name: fc.oneof(fc.stringMatching(/^[a-z_]{1,8}$/), fc.string()),
          parameters: anyJson,
          description: mostly(fc.string()),
          strict: mostly(fc.boolean()),
        },
        { requiredKeys: ['name'] },
      ),
    ),
  },
  { requiredKeys: [] },
);

/** Now and then a few more fields: known ones, prototype names, or any name. */
const extraFields = (maxKeys: number) =>
  fc.oneof(
    { arbitrary: fc.constant({}), weight: 2 },
    { arbitrary: fc.dictionary(fc.oneof(fc.constantFrom(...CHAT_FIELDS), fc.string({ maxLength: 12 })), anyJson, { maxKeys }), weight: 1 },
  );

/** Chat bodies close enough to valid to get past the first checks, with any field possibly wrong. */
const chatBody = fc
  .tuple(
    fc.record(
      {
        model: mostly(fc.constantFrom(...CHAT_MODELS, ...CHAT_MODELS, ...EMBED_MODELS, 'nope/model')),
        messages: mostly(fc.array(message, { maxLength: 4 })),
        stream: mostly(fc.boolean()),
        stream_options: mostly(fc.record({ include_usage: fc.boolean() })),
        tools: mostly(fc.array(tool, { maxLength: 2 })),
        tool_choice: mostly(
          fc.oneof(fc.constantFrom('auto', 'none', 'required'), fc.record({ type: fc.constant('function'), function: fc.record({ name: fc.string() }) })),
        ),
        response_format: mostly(
          fc.record(
            { type: fc.constantFrom('text', 'json_object', 'json_schema'), json_schema: mostly(fc.record({ name: fc.string(), schema: anyJson })) },
            { requiredKeys: ['type'] },
          ),
        ),
        max_tokens: mostly(fc.integer({ min: -5, max: 100 })),
        temperature: mostly(fc.double({ noNaN: true })),
      },
      { requiredKeys: ['model', 'messages'] },
    ),
    extraFields(4),
  )
  .map(([known, extra]) => ({ ...extra, ...known }));

const tokens = fc.array(fc.integer({ min: -2, max: 100_000 }), { maxLength: 4 });

const embeddingsBody = fc
  .tuple(
    fc.record(
      {
        model: mostly(fc.constantFrom(...EMBED_MODELS, ...EMBED_MODELS, ...CHAT_MODELS, 'nope/model')),
        input: mostly(fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 4 }), tokens, fc.array(tokens, { maxLength: 3 }))),
        encoding_format: mostly(fc.constantFrom('float', 'base64')),
        dimensions: mostly(fc.integer({ min: -2, max: 4096 })),
      },
      { requiredKeys: ['model', 'input'] },
    ),
    extraFields(3),
  )
  .map(([known, extra]) => ({ ...extra, ...known }));

/** Valid JSON text with a few bytes overwritten: mostly broken JSON, sometimes broken UTF-8. */
const mangledJson = fc
  .tuple(
    chatBody,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
  )
  .map(([body, edits]) => {
    const bytes = Buffer.from(JSON.stringify(body));
    for (const [at, byte] of edits) bytes[at % bytes.length] = byte;
    return bytes;
  });

describe('any body to the OpenAI endpoints gets a 4xx in OpenAI error shape', () => {
  let mock: MockUpstream;
  let t: TestGateway;

  beforeAll(async () => {
    mock = await startMockUpstream();
    mock.setDefault((req): MockReply => {
      if (req.url.startsWith('/v1/messages')) return anthropicInvalidRequestError('mock: refused');
      if (req.url.includes(':batchEmbedContents') || req.url.includes(':embedContent')) {
        return { status: 400, json: { error: { code: 400, message: 'mock: refused', status: 'INVALID_ARGUMENT' } } };
      }
      return openaiError(400, 'mock: refused');
    });
    t = await startTestGateway({
      log: { level: 'silent' },
      providers: [
        { id: 'o', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'k' },
        { id: 'a', type: 'anthropic', baseUrl: mock.url, apiKey: 'k' },
        { id: 'g', type: 'gemini', baseUrl: mock.url, apiKey: 'k' },
      ],
      models: [
        { id: 'fz/openai', endpoints: [{ provider: 'o', model: 'gpt-4o-mini' }] },
        { id: 'fz/anthropic', maxOutputTokens: 1024, endpoints: [{ provider: 'a', model: 'claude-haiku-4-5' }] },
        { id: 'fz/embed', kind: 'embedding', endpoints: [{ provider: 'o', model: 'text-embedding-3-small' }] },
        { id: 'fz/gembed', kind: 'embedding', endpoints: [{ provider: 'g', model: 'gemini-embedding-001' }] },
      ],
    });
  });
  afterAll(async () => {
    await t?.close();
    await mock?.close();
  });

  async function send(path: string, payload: string | Buffer): Promise<void> {
    const res = await t.gw.app.inject({
      method: 'POST',
      url: path,
      headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
      payload,
    });
    const context = `${path} ${res.statusCode} ${res.body.slice(0, 300)}`;
    expect(res.statusCode, context).toBeGreaterThanOrEqual(400);
    expect(res.statusCode, context).toBeLessThan(500);
    expect(res.headers['content-type'], context).toMatch(/^application\/json/);
    const body = res.json();
    assertSchema('ErrorResponse', body);
    expect(typeof body.error.message, context).toBe('string');
  }

  it('any JSON value', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PATHS), fc.jsonValue(), (path, value) => send(path, JSON.stringify(value))),
      { numRuns: 500 },
    );
  });

  it('any byte string', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PATHS), fc.uint8Array({ maxLength: 512 }), (path, bytes) => send(path, Buffer.from(bytes))),
      { numRuns: 500 },
    );
  });

  it('JSON text with bytes overwritten', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(...PATHS), mangledJson, (path, bytes) => send(path, bytes)), { numRuns: 500 });
  });

  it('chat requests with any field malformed', async () => {
    await fc.assert(fc.asyncProperty(chatBody, (body) => send('/v1/chat/completions', JSON.stringify(body))), { numRuns: 800 });
  });

  it('embeddings requests with any field malformed', async () => {
    await fc.assert(fc.asyncProperty(embeddingsBody, (body) => send('/v1/embeddings', JSON.stringify(body))), { numRuns: 500 });
  });
});

describe('decodeChatRequest', () => {
  function decodes(body: unknown): void {
    try {
      decodeChatRequest(body, 'upstream-model', 'anthropic');
    } catch (err) {
      if (!(err instanceof GatewayError) || err.status !== 400) {
        throw new Error(`expected a 400 GatewayError, got ${err instanceof GatewayError ? `status ${err.status}` : String(err)}`);
      }
    }
  }

  it('throws only 400 GatewayErrors on arbitrary JSON values and objects', () => {
    fc.assert(fc.property(fc.jsonValue(), decodes), { numRuns: 1000 });
    fc.assert(fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })), decodes), { numRuns: 1000 });
  });

  it('throws only 400 GatewayErrors on near-valid chat requests', () => {
    fc.assert(fc.property(chatBody, decodes), { numRuns: 5000 });
  });
});
