import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJsonBody, rawJsonOf, rewriteRawJson, type RawJsonObject } from '../../src/server/json-body.js';

const LIMITS = { maxDepth: 64, maxItems: 10_000 };

function parse(text: string): { body: Record<string, unknown>; raw: RawJsonObject | undefined } {
  const { value, raw } = parseJsonBody(Buffer.from(text), LIMITS);
  return { body: value as Record<string, unknown>, raw };
}

/** What the forwarded bytes say, or undefined when the caller must serialise instead. */
function forwarded(text: string, model = 'up/model', append?: string): unknown {
  const parsed = parse(text);
  const raw = rawJsonOf(parsed.body, parsed.raw);
  if (raw === undefined) return undefined;
  const bytes = rewriteRawJson(raw, model, append);
  return bytes === undefined ? undefined : JSON.parse(bytes.toString('utf8'));
}

describe('forwarding the client body bytes with the model replaced', () => {
  it('replaces only the top-level model value and keeps every other byte', () => {
    const text = '{ "model" : "client/model", "seed": 12345678901234567890, "messages":[{"role":"user","content":"hé \\"model\\": \\"x\\""}] }';
    const { body, raw } = parse(text);
    const bytes = rewriteRawJson(rawJsonOf(body, raw)!, 'gpt-4o-mini')!.toString('utf8');
    expect(bytes).toBe(text.replace('"client/model"', '"gpt-4o-mini"'));
    // The integer the client wrote is forwarded as written, not rounded through a double.
    expect(bytes).toContain('12345678901234567890');
  });

  it('appends a member before the closing brace', () => {
    expect(forwarded('{"model":"a","stream":true}\n', 'b', '"stream_options":{"include_usage":true}')).toEqual({
      model: 'b',
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('ignores "model" keys and values below the top level', () => {
    const text = JSON.stringify({
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { model: { type: 'string' } } } } }],
      messages: [{ role: 'user', content: 'model' }],
      model: 'client/model',
      metadata: { model: 'nested' },
    });
    const out = forwarded(text) as Record<string, unknown>;
    expect(out).toEqual({ ...JSON.parse(text), model: 'up/model' });
  });

  it('refuses bytes whose keys are duplicated at any depth, so the parse and the bytes cannot disagree', () => {
    expect(forwarded('{"model":"a","model":"b"}')).toBeUndefined();
    expect(forwarded('{"model":"a","extra_body":{"x":1},"extra_body":{}}')).toBeUndefined();
    expect(forwarded('{"model":"a","extra_body":{"x":{"api_base":"http://elsewhere"},"x":{}}}')).toBeUndefined();
    expect(forwarded('{"model":"a","messages":[{"role":"user","content":"a","content":"b"}]}')).toBeUndefined();
    // The same keys in different objects are not duplicates.
    expect(forwarded('{"model":"a","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}')).toEqual({
      model: 'up/model',
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: 'b' },
      ],
    });
  });

  it('refuses a model written with escapes or not as a string', () => {
    expect(forwarded('{"mod\\u0065l":"a"}')).toBeUndefined();
    expect(forwarded('{"model":5}')).toBeUndefined();
    expect(forwarded('{"model":null,"x":"y"}')).toBeUndefined();
    expect(forwarded('{"messages":[]}')).toBeUndefined();
  });

  it('a string value that reads "model" is not taken for the key', () => {
    expect(forwarded('{"user":"model","model":"a"}')).toEqual({ user: 'model', model: 'up/model' });
    expect(forwarded('{"user":"model","x":"a"}')).toBeUndefined();
  });

  it('has no layout for anything but a top-level object', () => {
    const { value, raw } = parseJsonBody(Buffer.from('[{"model":"a"}]'), LIMITS);
    expect(raw).toBeUndefined();
    expect(rawJsonOf(value as object, raw)).toBeUndefined();
  });

  it('for any object, the forwarded bytes parse to the parsed body with the model replaced', () => {
    const key = fc.oneof(fc.constantFrom('model', 'stream', 'messages', 'Model', 'model ', 'provider'), fc.string());
    const member = fc.tuple(key, fc.jsonValue());
    fc.assert(
      fc.property(fc.array(member, { maxLength: 8 }), fc.string(), fc.boolean(), (members, model, pretty) => {
        const obj: Record<string, unknown> = {};
        for (const [k, v] of members) if (k !== '__proto__' && k !== 'constructor') obj[k] = v;
        obj.model = model;
        const text = pretty ? JSON.stringify(obj, null, 2) : JSON.stringify(obj);
        fc.pre(!text.includes('"__proto__"') && !text.includes('"constructor"')); // refused by the parser
        const out = forwarded(text, 'up/model');
        expect(out).toEqual(JSON.parse(JSON.stringify({ ...obj, model: 'up/model' })));
      }),
      { numRuns: 500 },
    );
  });
});
