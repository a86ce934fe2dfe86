import { describe, expect, it } from 'vitest';
import {
  IMAGE_TOKENS,
  IMAGE_TOKENS_LOW_DETAIL,
  MEDIA_PART_TOKENS,
  estimatePromptTokens,
  requestedOutputTokens,
  tokenizerForProvider,
} from '../../src/limits/tokens.js';

const o200k = { tokenizer: 'o200k' } as const;
const approx = { tokenizer: 'approx' } as const;
const user = (content: unknown) => ({ model: 'gpt-4o', messages: [{ role: 'user', content }] });

describe('estimatePromptTokens with o200k_base', () => {
  it('counts known o200k_base texts exactly', async () => {
    // Token counts of o200k_base (the same ids as tiktoken: [2500, 382, 1236, 2201] for the first).
    expect(await estimatePromptTokens({ input: 'This is some text' }, o200k)).toBe(4);
    expect(await estimatePromptTokens({ input: 'hello, I am a text, and I have commas. a,b,c' }, o200k)).toBe(15);
    expect(await estimatePromptTokens({ input: ["What's", 'This is some text'] }, o200k)).toBe(5);
    expect(await estimatePromptTokens({ input: [[1, 2, 3], [4]] }, o200k)).toBe(4);
  });

  it('adds OpenAI’s chat overhead: 3 per message, 1 per name, 3 for the reply', async () => {
    // 3 + "user" (1) + "This is some text" (4) + 3
    expect(await estimatePromptTokens(user('This is some text'), o200k)).toBe(11);
    const two = {
      messages: [
        { role: 'system', content: 'This is some text' },
        { role: 'user', name: 'Ann', content: [{ type: 'text', text: 'This is some text' }] },
      ],
    };
    const ann = await estimatePromptTokens({ input: 'Ann' }, o200k);
    expect(await estimatePromptTokens(two, o200k)).toBe(3 + 1 + 4 + (3 + 1 + 4 + ann + 1) + 3);
  });

  it('counts tool calls and tool definitions', async () => {
    const base = user('This is some text');
    const withTools = {
      ...base,
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    };
    const toolJson = JSON.stringify(withTools.tools[0]!.function);
    expect(await estimatePromptTokens(withTools, o200k)).toBe(11 + (await estimatePromptTokens({ input: toolJson }, o200k)));

    const call = {
      messages: [
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      ],
    };
    const expected = 3 + 1 + (await estimatePromptTokens({ input: ['get_weather', '{"city":"Paris"}'] }, o200k)) + 3;
    expect(await estimatePromptTokens(call, o200k)).toBe(expected);
  });

  it('counts images and other media at fixed costs', async () => {
    const parts = [
      { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
      { type: 'image_url', image_url: { url: 'https://example.com/b.png', detail: 'low' } },
      { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } },
    ];
    expect(await estimatePromptTokens(user(parts), o200k)).toBe(3 + 1 + 3 + IMAGE_TOKENS + IMAGE_TOKENS_LOW_DETAIL + MEDIA_PART_TOKENS);
  });

  it('counts special-token strings in user text as text, without throwing', async () => {
    expect(await estimatePromptTokens({ input: '<|endoftext|> hi' }, o200k)).toBeGreaterThan(3);
  });

  it('extrapolates beyond maxTokenizedChars at the measured ratio', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(400);
    const exact = await estimatePromptTokens({ input: text }, o200k);
    const capped = await estimatePromptTokens({ input: text }, { tokenizer: 'o200k', maxTokenizedChars: 1_000 });
    expect(Math.abs(capped - exact) / exact).toBeLessThan(0.02);
  });

  it('ignores what is not a chat or embeddings body', async () => {
    expect(await estimatePromptTokens(null, o200k)).toBe(0);
    expect(await estimatePromptTokens({ messages: 'nope' }, o200k)).toBe(0);
    expect(await estimatePromptTokens({ messages: [null, 1] }, o200k)).toBe(3);
  });
});

describe('estimatePromptTokens approximation', () => {
  it('is characters / 4 over the same texts, with the same overheads', async () => {
    // "user" + "abcdefgh" = 12 characters → 3 tokens; + 3 per message + 3 for the reply.
    expect(await estimatePromptTokens(user('abcdefgh'), approx)).toBe(9);
    expect(await estimatePromptTokens({ input: 'abcde' }, approx)).toBe(2);
    expect(await estimatePromptTokens(user([{ type: 'image_url', image_url: { url: 'x' } }]), approx)).toBe(1 + 6 + IMAGE_TOKENS);
  });
});

describe('requestedOutputTokens', () => {
  it('prefers max_completion_tokens, then max_tokens, then the fallback', () => {
    expect(requestedOutputTokens({ max_completion_tokens: 50, max_tokens: 80 }, 1_000)).toBe(50);
    expect(requestedOutputTokens({ max_tokens: 80 }, 1_000)).toBe(80);
    expect(requestedOutputTokens({}, 1_000)).toBe(1_000);
    expect(requestedOutputTokens({ max_tokens: -1, max_completion_tokens: 'x' }, 1_000)).toBe(1_000);
    expect(requestedOutputTokens(undefined, 7)).toBe(7);
  });
});

describe('tokenizerForProvider', () => {
  it('uses o200k for OpenAI only', () => {
    expect(tokenizerForProvider('openai')).toBe('o200k');
    expect(tokenizerForProvider('anthropic')).toBe('approx');
    expect(tokenizerForProvider('openai-compatible')).toBe('approx');
  });
});
