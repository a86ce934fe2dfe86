/** The OpenAI inbound dialect: request decoding (every 400 names its field) and stream encoding. */
import { describe, expect, it } from 'vitest';
import { decodeChatRequest } from '../../src/api/openai/decode-request.js';
import { OpenAIStreamEncoder } from '../../src/api/openai/encode-stream.js';
import { GatewayError } from '../../src/ir/errors.js';
import { parseSSE } from '../../src/sse/sse-parser.js';
import { assertSchema } from '../helpers/openai-schema.js';

const user = { role: 'user', content: 'hi' };

function rejects(body: unknown): GatewayError {
  try {
    decodeChatRequest(body, 'm', 'anthropic');
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(400);
    return err as GatewayError;
  }
  throw new Error('expected a 400');
}

describe('decodeChatRequest', () => {
  it('decodes every translated field into the IR', () => {
    const { request, includeUsage, warnings } = decodeChatRequest(
      {
        model: 'x/y',
        messages: [
          { role: 'system', content: 'sys' },
          { role: 'developer', content: [{ type: 'text', text: 'dev' }] },
          { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/PNG;base64,AAAA', detail: 'low' } }] },
          { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'c1', content: 'ok' },
        ],
        stream: true,
        stream_options: { include_usage: true },
        max_completion_tokens: 100,
        max_tokens: 5,
        temperature: 0.5,
        top_p: 0.9,
        stop: 'END',
        seed: 3,
        user: 'u',
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
        tool_choice: { type: 'function', function: { name: 'f' } },
        parallel_tool_calls: false,
        response_format: { type: 'json_object' },
        reasoning_effort: 'low',
        store: true,
      },
      'upstream-model',
      'anthropic',
    );
    expect(includeUsage).toBe(true);
    expect(warnings).toEqual([{ param: 'store', message: expect.stringContaining('ignored') }]);
    expect(request).toMatchObject({
      model: 'upstream-model',
      stream: true,
      maxTokens: 100,
      temperature: 0.5,
      topP: 0.9,
      stop: ['END'],
      seed: 3,
      user: 'u',
      toolChoice: { type: 'tool', name: 'f' },
      parallelToolCalls: false,
      responseFormat: { type: 'json_object' },
      reasoningEffort: 'low',
    });
    expect(request.messages).toEqual([
      { role: 'system', origin: 'system', text: 'sys' },
      { role: 'system', origin: 'developer', text: 'dev' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'look' },
          { type: 'image', source: { kind: 'base64', mediaType: 'image/png', data: 'AAAA' }, detail: 'low' },
        ],
      },
      { role: 'assistant', content: [], toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'c1', content: 'ok' },
    ]);
  });

  it.each([
    [{ messages: 'x' }, 'messages'],
    [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://insecure/x.png' } }] }] }, 'messages[0].content[0].image_url.url'],
    [{ messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }, 'messages[0].content[0].type'],
    [{ messages: [user, { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f' } }] }] }, 'messages[1].tool_calls[0].function.arguments'],
    [{ messages: [user, { role: 'tool', content: 'x' }] }, 'messages[1].tool_call_id'],
    [{ messages: [user], temperature: 3 }, 'temperature'],
    [{ messages: [user], top_p: '1' }, 'top_p'],
    [{ messages: [user], max_tokens: 0 }, 'max_tokens'],
    [{ messages: [user], n: 1.5 }, 'n'],
    [{ messages: [user], stop: [1] }, 'stop'],
    [{ messages: [user], reasoning_effort: 'maximum' }, 'reasoning_effort'],
    [{ messages: [user], tools: [{ type: 'custom', custom: {} }] }, 'tools[0].type'],
    [{ messages: [user], tools: [{ type: 'function', function: { name: 'bad name!' } }] }, 'tools[0].function.name'],
    [{ messages: [user], tool_choice: 'sometimes' }, 'tool_choice'],
    [{ messages: [user], tool_choice: { type: 'function', function: { name: 'undeclared' } } }, 'tool_choice.function.name'],
    [{ messages: [user], response_format: { type: 'yaml' } }, 'response_format.type'],
    [{ messages: [user], stream_options: { include_usage: true } }, 'stream_options'],
    [{ messages: [user], functions: [] }, 'functions'],
    [{ messages: [user], web_search_options: {} }, 'web_search_options'],
    [{ messages: [user], bogus_field: 1 }, 'bogus_field'],
  ])('rejects %j naming %s', (body, param) => {
    expect(rejects({ model: 'x', ...body }).param).toBe(param);
  });

  it('rejects a body that is not an object', () => {
    for (const body of [null, [], 'x', 3]) expect(rejects(body).code).toBe('MR_ERR_INVALID_REQUEST');
  });

  it('does not mutate its input', () => {
    const body = { model: 'x', messages: [{ role: 'user', content: 'hi' }], stop: 'a' };
    const copy = structuredClone(body);
    decodeChatRequest(body, 'm', 'gemini');
    expect(body).toEqual(copy);
  });
});

describe('OpenAIStreamEncoder', () => {
  it('emits the role chunk, deltas, finish, usage and [DONE] in OpenAI order, each valid against the schema', () => {
    const enc = new OpenAIStreamEncoder('chatcmpl-1', 'm', 1, true);
    let out = '';
    out += enc.encode({ type: 'start' });
    out += enc.encode({ type: 'text-delta', text: 'Hi' });
    out += enc.encode({ type: 'tool-call-start', index: 0, id: 'call_1', name: 'f' });
    out += enc.encode({ type: 'tool-call-delta', index: 0, argumentsDelta: '{"a":1}' });
    out += enc.encode({ type: 'usage', usage: { promptTokens: 3, completionTokens: 4, cachedTokens: 1, cacheWriteTokens: 0, cacheWrite1hTokens: 0, reasoningTokens: 2 } });
    out += enc.encode({ type: 'finish', finishReason: 'tool_calls' });
    out += enc.end();
    const events = parseSSE(out);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    for (const c of chunks) assertSchema('CreateChatCompletionStreamResponse', c);
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '', refusal: null });
    expect(chunks[2].choices[0].delta.tool_calls[0]).toEqual({ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } });
    expect(chunks[4].choices[0].finish_reason).toBe('tool_calls');
    expect(chunks[5].choices).toEqual([]);
    expect(chunks[5].usage).toEqual({
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 1 },
      completion_tokens_details: { reasoning_tokens: 2 },
    });
  });

  it('ends a failed stream with an error event and no [DONE]', () => {
    const enc = new OpenAIStreamEncoder('chatcmpl-1', 'm', 1, false);
    const out = enc.encode({ type: 'text-delta', text: 'x' }) + enc.encode({ type: 'error', error: new GatewayError('MR_ERR_UPSTREAM_UNAVAILABLE', 'Overloaded') });
    expect(out).not.toContain('[DONE]');
    expect(JSON.parse(parseSSE(out).at(-1)!.data)).toEqual({
      error: { message: 'Overloaded', type: 'upstream_error', param: null, code: 'MR_ERR_UPSTREAM_UNAVAILABLE' },
    });
  });
});

describe('decodeChatRequest: inherited property names are plain unknown fields', () => {
  it.each(['toString', 'constructor', 'hasOwnProperty', 'valueOf'])('%s → 400 "Unrecognized request argument", not a refusal quoting native code', (name) => {
    let err: unknown;
    try {
      decodeChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }], [name]: 1 }, 'm', 'anthropic');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(400);
    expect((err as GatewayError).message).toBe(`Unrecognized request argument supplied: ${name}`);
  });
});
