/**
 * Token estimates for tokens-per-minute limits, made before a request goes upstream and
 * reconciled with the provider's reported usage afterwards (`RateTicket.finish`).
 *
 * - 'o200k' (OpenAI models): the o200k_base BPE (GPT-4o, GPT-4.1, GPT-5, o-series) from
 *   gpt-tokenizer, over message texts, tool calls and tool definitions, plus OpenAI's documented
 *   chat overhead: 3 tokens per message, 1 per `name`, 3 to prime the reply. The encoder is
 *   loaded on first use (≈ 0.4 s and ≈ 35 MB of heap, once per process); call
 *   `preloadTokenizer()` at startup to pay that before the first request. Counting costs about
 *   1 ms per 10 KB of text on the event loop, so only the first `maxTokenizedChars` characters
 *   are tokenized and the rest is extrapolated at the ratio measured on them.
 * - 'approx' (every other provider, whose tokenizers we do not ship): characters / 4 over the
 *   same texts, with the same overheads. This is the usual rule of thumb for English; it
 *   underestimates text in scripts that use about one token per character (Chinese, Japanese).
 *
 * Both count images at a fixed number of tokens (OpenAI's cost of a 1024×1024 image: 765 at
 * high or auto detail, 85 at low) and audio or file parts at `MEDIA_PART_TOKENS`.
 * Nothing here is logged or stored: the estimate is a number.
 */

export type TokenizerKind = 'o200k' | 'approx';

export interface EstimateOptions {
  tokenizer: TokenizerKind;
  /** Characters tokenized exactly before extrapolating ('o200k' only). Default 100 000. */
  maxTokenizedChars?: number;
}

/** Tokens per message: `<|start|>{role}\n…<|end|>\n` around the content. */
export const TOKENS_PER_MESSAGE = 3;
/** Extra tokens when a message has a `name`. */
export const TOKENS_PER_NAME = 1;
/** Every reply is primed with `<|start|>assistant<|message|>`. */
export const REPLY_PRIMING_TOKENS = 3;
/** An image at 'high' or 'auto' detail (a 1024×1024 image on GPT-4o: 85 + 4 tiles × 170). */
export const IMAGE_TOKENS = 765;
/** An image at 'low' detail. */
export const IMAGE_TOKENS_LOW_DETAIL = 85;
/** An audio or file part, or any other non-text part. */
export const MEDIA_PART_TOKENS = 1_000;
/** Characters per token in the approximation. */
export const CHARS_PER_TOKEN = 4;

type Body = Record<string, unknown>;
type Counter = (text: string) => number;

let loading: Promise<Counter> | undefined;

/** Loads the o200k_base encoder (once); resolves when it is ready. */
export async function preloadTokenizer(): Promise<void> {
  await loadO200k();
}

function loadO200k(): Promise<Counter> {
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then(
    (m) => {
      // Special-token strings in user text ("<|endoftext|>") are counted as the text they are.
      const opts = { disallowedSpecial: new Set<string>() };
      return (text: string) => m.countTokens(text, opts);
    },
    (err: unknown) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}

/** The tokenizer for a provider type: o200k for OpenAI itself, the approximation elsewhere. */
export function tokenizerForProvider(providerType: string): TokenizerKind {
  return providerType === 'openai' ? 'o200k' : 'approx';
}

interface Collected {
  texts: string[];
  fixedTokens: number;
}

function isRecord(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function pushString(out: string[], v: unknown): void {
  if (typeof v === 'string' && v.length > 0) out.push(v);
}

function pushJson(out: string[], v: unknown): void {
  if (v === undefined || v === null) return;
  try {
    pushString(out, JSON.stringify(v));
  } catch {
    // Not serialisable (cannot come from a parsed JSON body); nothing to count.
  }
}

function mediaTokens(part: Body): number {
  if (part.type === 'image_url' || part.type === 'image') {
    const detail = isRecord(part.image_url) ? part.image_url.detail : part.detail;
    return detail === 'low' ? IMAGE_TOKENS_LOW_DETAIL : IMAGE_TOKENS;
  }
  return MEDIA_PART_TOKENS;
}

/** The texts an OpenAI-style chat or embeddings body sends, and the fixed-cost parts. */
function collect(body: unknown): Collected {
  const texts: string[] = [];
  let fixedTokens = 0;
  if (!isRecord(body)) return { texts, fixedTokens };

  if (Array.isArray(body.messages)) {
    for (const m of body.messages) {
      if (!isRecord(m)) continue;
      fixedTokens += TOKENS_PER_MESSAGE;
      pushString(texts, m.role);
      if (typeof m.name === 'string') {
        pushString(texts, m.name);
        fixedTokens += TOKENS_PER_NAME;
      }
      if (typeof m.content === 'string') pushString(texts, m.content);
      else if (Array.isArray(m.content)) {
        for (const part of m.content) {
          if (typeof part === 'string') pushString(texts, part);
          else if (!isRecord(part)) continue;
          else if (typeof part.text === 'string') pushString(texts, part.text);
          else if (typeof part.refusal === 'string') pushString(texts, part.refusal);
          else fixedTokens += mediaTokens(part);
        }
      }
      pushString(texts, m.refusal);
      if (Array.isArray(m.tool_calls)) {
        for (const call of m.tool_calls) {
          if (!isRecord(call)) continue;
          const fn = isRecord(call.function) ? call.function : call;
          pushString(texts, fn.name);
          pushString(texts, fn.arguments);
        }
      }
      if (isRecord(m.function_call)) {
        pushString(texts, m.function_call.name);
        pushString(texts, m.function_call.arguments);
      }
    }
    fixedTokens += REPLY_PRIMING_TOKENS;
  }

  // Tool definitions are counted as their JSON text (OpenAI renders them into the prompt in its
  // own syntax; the JSON is a little longer, which errs on the safe side).
  if (Array.isArray(body.tools)) {
    for (const tool of body.tools) pushJson(texts, isRecord(tool) && isRecord(tool.function) ? tool.function : tool);
  }
  if (Array.isArray(body.functions)) for (const fn of body.functions) pushJson(texts, fn);
  if (isRecord(body.response_format) && body.response_format.json_schema !== undefined) {
    pushJson(texts, body.response_format.json_schema);
  }

  // Embeddings: a string, strings, or token-id arrays (counted exactly).
  const input = body.input;
  if (typeof input === 'string') pushString(texts, input);
  else if (Array.isArray(input)) {
    for (const item of input) {
      if (typeof item === 'string') pushString(texts, item);
      else if (typeof item === 'number') fixedTokens += 1;
      else if (Array.isArray(item)) fixedTokens += item.length;
    }
  }
  return { texts, fixedTokens };
}

function approxTokens(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN);
}

/**
 * Estimated prompt tokens of an OpenAI-style chat completions (or embeddings) body. Never
 * throws: if the o200k encoder cannot be loaded, the approximation is used.
 */
export async function estimatePromptTokens(body: unknown, opts: EstimateOptions): Promise<number> {
  const { texts, fixedTokens } = collect(body);
  if (opts.tokenizer === 'approx') {
    let chars = 0;
    for (const t of texts) chars += t.length;
    return approxTokens(chars) + fixedTokens;
  }
  let count: Counter;
  try {
    count = await loadO200k();
  } catch {
    return estimatePromptTokens(body, { tokenizer: 'approx' });
  }
  let budget = Math.max(0, opts.maxTokenizedChars ?? 100_000);
  let tokens = 0;
  let tokenizedChars = 0;
  let restChars = 0;
  for (const t of texts) {
    if (budget <= 0) {
      restChars += t.length;
      continue;
    }
    const head = t.length <= budget ? t : t.slice(0, budget);
    tokens += count(head);
    tokenizedChars += head.length;
    budget -= head.length;
    restChars += t.length - head.length;
  }
  if (restChars > 0) {
    tokens += tokenizedChars > 0 ? Math.ceil((restChars * tokens) / tokenizedChars) : approxTokens(restChars);
  }
  return tokens + fixedTokens;
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

/** Output tokens the request asks for: `max_completion_tokens` ?? `max_tokens` ?? `fallback`. */
export function requestedOutputTokens(body: unknown, fallback: number): number {
  if (!isRecord(body)) return fallback;
  return positiveInt(body.max_completion_tokens) ?? positiveInt(body.max_tokens) ?? fallback;
}
