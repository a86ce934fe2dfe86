/**
 * The fixed wire payloads of the benchmark: what the load generator sends and what the
 * upstream answers, in OpenAI's Chat Completions format as the API sends it.
 * @see https://platform.openai.com/docs/api-reference/chat/object
 * @see https://platform.openai.com/docs/api-reference/chat-streaming/streaming
 */

/** The usage object both replies carry, as OpenAI reports it. */
const USAGE = {
  prompt_tokens: 27,
  completion_tokens: 17,
  total_tokens: 44,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};

/** The model id clients send to the gateway. */
export const GATEWAY_MODEL = 'bench/model';
/** The model id at the upstream (what the gateway rewrites to; the proxy forwards as is). */
export const UPSTREAM_MODEL = 'gpt-4o-mini';

const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant. Answer briefly.' },
  { role: 'user', content: 'Write one sentence about the sea.' },
];

/** A small non-streamed chat request body. */
export function chatBody(model: string): string {
  return JSON.stringify({ model, messages: MESSAGES, max_tokens: 64, temperature: 0.7 });
}

/**
 * A streamed chat request body. It asks for the usage chunk itself, so the proxy and the
 * gateway forward the same bytes (the gateway would otherwise drop the usage chunk it injected).
 */
export function chatStreamBody(model: string): string {
  return JSON.stringify({
    model,
    messages: MESSAGES,
    max_tokens: 64,
    temperature: 0.7,
    stream: true,
    stream_options: { include_usage: true },
  });
}

const CREATED = 1_764_000_000;
const ANSWER = 'The sea keeps its own time, folding light into waves that never quite repeat.';

/** A non-streamed `chat.completion` object with usage, as OpenAI returns it (≈ 700 bytes). */
export const COMPLETION_JSON = JSON.stringify({
  id: 'chatcmpl-BenchAbCdEfGhIjKlMnOpQrStUvWx',
  object: 'chat.completion',
  created: CREATED,
  model: 'gpt-4o-mini-2024-07-18',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: ANSWER, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: USAGE,
  service_tier: 'default',
  system_fingerprint: 'fp_bench0001',
});

function chunk(delta: unknown, finish: string | null = null, extra: Record<string, unknown> = {}): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-BenchAbCdEfGhIjKlMnOpQrStUvWx',
    object: 'chat.completion.chunk',
    created: CREATED,
    model: 'gpt-4o-mini-2024-07-18',
    service_tier: 'default',
    system_fingerprint: 'fp_bench0001',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    // As OpenAI streams when `stream_options.include_usage` is set (the bench asks for it, and
    // the gateway always does): every chunk but the last carries `"usage":null`.
    usage: null,
    ...extra,
  })}\n\n`;
}

/** The text split into 10 content deltas (word boundaries, spread evenly). */
function deltas(): string[] {
  const words = ANSWER.split(/(?= )/);
  const out: string[] = [];
  for (let i = 0; i < 10; i++) out.push(words.slice(Math.floor((i * words.length) / 10), Math.floor(((i + 1) * words.length) / 10)).join(''));
  return out;
}

/**
 * A complete SSE body: a role chunk, ~10 content chunks, a finish chunk (each with
 * `"usage":null`), the usage chunk (`choices: []`) and `[DONE]` (≈ 4 KB).
 */
export const COMPLETION_SSE =
  chunk({ role: 'assistant', content: '', refusal: null }) +
  deltas()
    .map((d) => chunk({ content: d }))
    .join('') +
  chunk({}, 'stop') +
  `data: ${JSON.stringify({
    id: 'chatcmpl-BenchAbCdEfGhIjKlMnOpQrStUvWx',
    object: 'chat.completion.chunk',
    created: CREATED,
    model: 'gpt-4o-mini-2024-07-18',
    service_tier: 'default',
    system_fingerprint: 'fp_bench0001',
    choices: [],
    usage: USAGE,
  })}\n\n` +
  'data: [DONE]\n\n';
