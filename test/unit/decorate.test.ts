import { describe, expect, it } from 'vitest';
import { ChunkDecorator, decorateCompletion, usageInChunk, withoutNullUsage } from '../../src/gateway/decorate.js';
import { emptyUsage } from '../../src/ir/usage.js';

const GEN = 'gen-0123456789abcdef0123456789abcdef';
const BODY = {
  id: 'chatcmpl-abc',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'the "usage": {} is quoted here', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  system_fingerprint: 'fp',
};

function decorate(text: string, cost = 1500): Record<string, any> {
  const out = decorateCompletion(text, JSON.parse(text), GEN, 'oa', cost, emptyUsage());
  return JSON.parse(out);
}

describe('decorateCompletion', () => {
  for (const [name, text] of [
    ['compact', JSON.stringify(BODY)],
    ['pretty-printed (as OpenAI sends it)', JSON.stringify(BODY, null, 2)],
  ] as const) {
    it(`rewrites the id, adds the provider and usage.cost, keeps the rest (${name})`, () => {
      const out = decorate(text);
      expect(out).toEqual({ ...BODY, id: GEN, provider: 'oa', usage: { ...BODY.usage, cost: 0.0000015 } });
      expect(Object.keys(out).slice(0, 2)).toEqual(['id', 'provider']);
    });
  }

  it('splices rather than re-serialises: key order and the upstream formatting are kept', () => {
    const text = '{\n  "id": "chatcmpl-abc",\n  "usage": {\n    "prompt_tokens": 3\n  },\n  "model": "m"\n}';
    const out = decorateCompletion(text, JSON.parse(text), GEN, 'oa', 1500, emptyUsage());
    expect(out).toBe(`{"id":"${GEN}","provider":"oa",\n  "usage": {\n    "cost":0.0000015,"prompt_tokens": 3\n  },\n  "model": "m"\n}`);
    expect(Object.keys(JSON.parse(out))).toEqual(['id', 'provider', 'usage', 'model']);
  });

  it('handles an empty usage object and an unusual key order by falling back to re-serialising', () => {
    expect(decorate(JSON.stringify({ ...BODY, usage: {} })).usage).toEqual({ cost: 0.0000015 });
    const reordered = { object: 'chat.completion', id: 'x', usage: BODY.usage };
    expect(decorate(JSON.stringify(reordered))).toEqual({ id: GEN, provider: 'oa', object: 'chat.completion', usage: { ...BODY.usage, cost: 0.0000015 } });
  });

  it('replaces an upstream provider and cost instead of duplicating them (an OpenRouter-like upstream)', () => {
    const text = JSON.stringify({ ...BODY, provider: 'Upstream', usage: { ...BODY.usage, cost: 99 } });
    const out = decorateCompletion(text, JSON.parse(text), GEN, 'oa', 7, emptyUsage());
    expect(out.match(/"provider"/g)).toHaveLength(1);
    expect(out.match(/"cost"/g)).toHaveLength(1);
    expect(JSON.parse(out)).toMatchObject({ id: GEN, provider: 'oa', usage: { cost: 7e-9 } });
  });

  it('leaves exactly one id whatever way the upstream wrote its own: repeated, escaped, with a quote', () => {
    const usage = '"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}';
    for (const text of [
      `{"id":"chatcmpl-a","object":"chat.completion","id":"chatcmpl-b",${usage}}`,
      `{"id":"chatcmpl-a","object":"chat.completion","id":"chatcmpl-a",${usage}}`,
      `{"id":"chat\\u0063mpl-a",${usage}}`,
      `{"id":"chat\\"cmpl",${usage}}`,
      `{"id":"chatcmpl-a\\\\",${usage}}`,
      `{"id":"",${usage}}`,
    ]) {
      const out = decorateCompletion(text, JSON.parse(text), GEN, 'oa', 1500, emptyUsage());
      expect(out.match(/"id"/g), text).toHaveLength(1);
      expect(JSON.parse(out), text).toMatchObject({ id: GEN, provider: 'oa', usage: { prompt_tokens: 3, cost: 0.0000015 } });
    }
  });

  it('still splices a body whose nested objects have ids (tool calls)', () => {
    const message = { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"id":1}' } }] };
    const text = JSON.stringify({ ...BODY, choices: [{ index: 0, message, finish_reason: 'tool_calls' }] }, null, 2);
    const out = decorateCompletion(text, JSON.parse(text), GEN, 'oa', 1500, emptyUsage());
    expect(out.startsWith(`{"id":"${GEN}","provider":"oa",\n  "object"`)).toBe(true); // spliced: the upstream's formatting kept
    expect(JSON.parse(out).choices[0].message.tool_calls[0].id).toBe('call_1');
  });

  it('writes the cost as JSON writes numbers', () => {
    for (const cost of [1, 15, 1500, 1_234_567_891, 123_456_789_012_345]) {
      expect(decorate(JSON.stringify(BODY), cost).usage.cost).toBe(cost / 1e9);
    }
  });

  it('adds a usage object with the billed estimate when the upstream sent none', () => {
    const { usage: _u, ...noUsage } = BODY;
    const text = JSON.stringify(noUsage);
    const out = JSON.parse(decorateCompletion(text, JSON.parse(text), GEN, 'oa', 10, { ...emptyUsage(), promptTokens: 4, completionTokens: 1 }));
    expect(out.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 1, total_tokens: 5, cost: 1e-8 });
  });
});

describe('ChunkDecorator', () => {
  const chunk = (content: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1, model: 'm', ...extra, choices: [{ index: 0, delta: { content }, finish_reason: null }] });

  it('rewrites id and adds provider on every chunk, by splice or by re-serialising', () => {
    const d = new ChunkDecorator(GEN, 'oa');
    for (const text of [chunk(''), chunk('hello'), JSON.stringify({ object: 'chat.completion.chunk', id: 'chatcmpl-s', choices: [] })]) {
      const out = JSON.parse(d.decorate(text)!);
      expect(out.id).toBe(GEN);
      expect(out.provider).toBe('oa');
    }
  });

  it('never duplicates a provider the upstream already sends', () => {
    const d = new ChunkDecorator(GEN, 'oa');
    const out = d.decorate(chunk('a', { provider: 'Other' }))!;
    expect(out.match(/"provider"/g)).toHaveLength(1);
    expect(JSON.parse(out).provider).toBe('oa');
  });

  it('refuses text that is not a JSON object (the relay then ends the stream with an error)', () => {
    const d = new ChunkDecorator(GEN, 'oa');
    expect(d.decorate(chunk('first'))).toBeDefined();
    for (const garbage of ['not json', '{"id":"chatcmpl-s","choices":[', '[1,2]', '42', '"text"', '']) {
      expect(d.decorate(garbage), garbage).toBeUndefined();
    }
  });

  it('adds usage.cost to a usage chunk and estimates relayed text from chunk sizes', () => {
    const d = new ChunkDecorator(GEN, 'oa');
    d.decorate(chunk(''));
    d.decorate(chunk('x'.repeat(100)));
    expect(d.relayedTextChars()).toBe(100);
    const text = '{"id":"chatcmpl-s","choices":[],"usage":{"prompt_tokens":1}}';
    const out = d.withCost(text, JSON.parse(text), 500_000_000, emptyUsage());
    // Spliced: the upstream's key order kept, id and provider first, cost first in usage.
    expect(out).toBe(`{"id":"${GEN}","provider":"oa","choices":[],"usage":{"cost":0.5,"prompt_tokens":1}}`);
    const odd = '{"choices":[],"id":"chatcmpl-s","usage":{"prompt_tokens":1}}';
    expect(JSON.parse(d.withCost(odd, JSON.parse(odd), 500_000_000, emptyUsage()))).toEqual({ id: GEN, provider: 'oa', choices: [], usage: { prompt_tokens: 1, cost: 0.5 } });
  });

  it('learns the upstream id from the first chunk, parsing it when the text is unusual', () => {
    for (const first of [
      '{"id":"chatcmpl-\\u0073","choices":[]}', // an escape in the id
      '{"id":"chatcmpl-s","provider":"Upstream","choices":[]}', // a provider of its own: never spliced
      '{ "id": "chatcmpl-s", "choices": [] }',
    ]) {
      const d = new ChunkDecorator(GEN, 'oa');
      for (const text of [first, first]) {
        const out = d.decorate(text)!;
        expect(out.match(/"provider"/g), first).toHaveLength(1);
        expect(out.match(/"id"/g), first).toHaveLength(1);
        expect(JSON.parse(out), first).toMatchObject({ id: GEN, provider: 'oa', choices: [] });
      }
    }
  });
});

describe('usageInChunk / withoutNullUsage', () => {
  it('tells a chunk without usage, with usage null, and with a usage to read apart without parsing', () => {
    const cases: [string, 'none' | 'null' | 'value'][] = [
      ['{"id":"c","choices":[{"delta":{"content":"hi"}}]}', 'none'],
      ['{"id":"c","choices":[],"usage":null}', 'null'],
      ['{"id":"c", "usage" : null , "x":1}', 'null'],
      ['{"id":"c","choices":[],"usage":{"prompt_tokens":1}}', 'value'],
      ['{"id":"c","choices":[{"delta":{"content":"usage"}}]}', 'none'], // a value, not a key
      ['{"id":"c","choices":[{"delta":{"content":"usage"}}],"usage":null}', 'null'],
      ['{"id":"c","choices":[{"delta":{"content":"say \\"usage\\": 5"}}]}', 'none'], // escaped quotes in text
      ['{"a":{"usage":null},"usage":{"total_tokens":3}}', 'value'],
      ['{"usage":nullx}', 'value'], // not JSON: the parse reports it
      ['{"usage":0}', 'value'],
    ];
    for (const [text, said] of cases) expect(usageInChunk(text), text).toBe(said);
  });

  it("drops a compact trailing \"usage\":null and leaves anything else as it is", () => {
    expect(withoutNullUsage('{"id":"c","choices":[],"usage":null}')).toBe('{"id":"c","choices":[]}');
    for (const text of ['{"id":"c","usage":null,"x":1}', '{"id":"c", "usage": null}', '{"id":"c","usage":{"a":1}}']) {
      expect(withoutNullUsage(text)).toBe(text);
    }
  });
});
