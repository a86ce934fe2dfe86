/**
 * Cost per request for each provider type, streamed and not, with cached and reasoning tokens,
 * against hand-computed values to the nano-dollar — through the official `openai` SDK.
 *
 * Prices for every endpoint (USD per million tokens): input 2, cachedInput 0.5, cacheWrite 2.5,
 * cacheWrite1h 4, output 8 (reasoning defaults to output). In nano-USD per million tokens:
 * 2 000 000 000, 500 000 000, 2 500 000 000, 4 000 000 000, 8 000 000 000.
 */
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anthropicTextReply, anthropicTextStream } from '../fixtures/anthropic.js';
import { geminiThinkingReply, geminiThinkingStream } from '../fixtures/gemini.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockReply, type MockUpstream } from '../helpers/mock-upstream.js';

const PRICING = { input: 2, cachedInput: 0.5, cacheWrite: 2.5, cacheWrite1h: 4, output: 8 };

// OpenAI: prompt_tokens 1000 incl. 400 cached; completion_tokens 500 incl. 200 reasoning.
// 600 × 2e9 + 400 × 5e8 + 300 × 8e9 + 200 × 8e9 = 1.2e12 + 2e11 + 2.4e12 + 1.6e12 = 5.4e12 → 5 400 000 nano-USD
const OPENAI_USAGE = {
  prompt_tokens: 1000,
  completion_tokens: 500,
  total_tokens: 1500,
  prompt_tokens_details: { cached_tokens: 400, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 200, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};
const OPENAI_COST = 5_400_000;

// Anthropic: input_tokens 100 (excludes cache), cache_read 300, cache_creation 200 of which 50
// are 1-hour writes, output 80.
// 100 × 2e9 + 300 × 5e8 + 150 × 2.5e9 + 50 × 4e9 + 80 × 8e9
//   = 2e11 + 1.5e11 + 3.75e11 + 2e11 + 6.4e11 = 1.565e12 → 1 565 000 nano-USD
const ANTHROPIC_USAGE = { inputTokens: 100, cacheReadTokens: 300, cacheWriteTokens: 200, cacheWrite1hTokens: 50, outputTokens: 80 };
const ANTHROPIC_COST = 1_565_000;

// Gemini: promptTokenCount 4120 incl. 4096 cached; candidatesTokenCount 15 (excludes thoughts);
// thoughtsTokenCount 214, billed as output.
// 24 × 2e9 + 4096 × 5e8 + 15 × 8e9 + 214 × 8e9 = 4.8e10 + 2.048e12 + 1.2e11 + 1.712e12 = 3.928e12 → 3 928 000 nano-USD
const GEMINI_USAGE = { promptTokenCount: 4120, cachedContentTokenCount: 4096, candidatesTokenCount: 15, thoughtsTokenCount: 214 };
const GEMINI_COST = 3_928_000;

function openaiReply(): MockReply {
  return {
    json: {
      id: 'chatcmpl-cost',
      object: 'chat.completion',
      created: 1,
      model: 'o4-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok', refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: OPENAI_USAGE,
    },
  };
}

function openaiStream(): MockReply {
  const c = (rest: Record<string, unknown>) => JSON.stringify({ id: 'chatcmpl-cost', object: 'chat.completion.chunk', created: 1, model: 'o4-mini', ...rest });
  return {
    sse: [
      { data: c({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }) },
      { data: c({ choices: [{ index: 0, delta: { content: 'ok' }, finish_reason: null }] }) },
      { data: c({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) },
      { data: c({ choices: [], usage: OPENAI_USAGE }) },
      { data: '[DONE]' },
    ],
  };
}

const CASES = [
  { type: 'openai' as const, path: '/v1', cost: OPENAI_COST, reply: openaiReply, stream: openaiStream },
  {
    type: 'anthropic' as const,
    path: '',
    cost: ANTHROPIC_COST,
    reply: () => anthropicTextReply({ usage: ANTHROPIC_USAGE }),
    stream: () => anthropicTextStream({ usage: ANTHROPIC_USAGE }),
  },
  {
    type: 'gemini' as const,
    path: '',
    cost: GEMINI_COST,
    reply: () => geminiThinkingReply({ usage: GEMINI_USAGE }),
    stream: () => geminiThinkingStream({ usage: GEMINI_USAGE }),
  },
];

const costOf = (usage: unknown) => (usage as { cost?: number } | null | undefined)?.cost;

describe.each(CASES)('cost of a $type request', ({ type, path, cost, reply, stream }) => {
  let mock: MockUpstream;
  let t: TestGateway;
  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway({
      providers: [{ id: 'up', type, baseUrl: `${mock.url}${path}`, apiKey: 'k' }],
      models: [{ id: 'test/m', maxOutputTokens: 1000, endpoints: [{ provider: 'up', model: 'm', pricing: PRICING }] }],
    });
  });
  afterAll(async () => {
    await t.close();
    await mock.close();
  });

  it('non-streamed: usage.cost and the usage row match the hand-computed cost', async () => {
    mock.enqueue(reply());
    const res = await t.client.chat.completions.create({ model: 'test/m', messages: [{ role: 'user', content: 'hi' }] });
    expect(costOf(res.usage)).toBe(cost / 1e9);
    const row = (await t.usage()).find((r) => r.id === res.id)!;
    expect(row.costNano).toBe(cost);
    expect(row.costEstimated).toBe(false);
  });

  it('streamed: the same cost on the usage chunk and in the usage row', async () => {
    mock.enqueue(stream());
    const s = await t.client.chat.completions.create({
      model: 'test/m',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let last: OpenAI.Chat.Completions.ChatCompletionChunk | undefined;
    for await (const c of s) last = c;
    expect(costOf(last!.usage)).toBe(cost / 1e9);
    const row = (await t.usage()).find((r) => r.id === last!.id)!;
    expect(row.costNano).toBe(cost);
    expect(row.streamed).toBe(true);
  });
});
