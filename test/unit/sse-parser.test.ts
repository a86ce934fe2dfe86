/**
 * The shared SSE parser must yield identical events however the upstream's bytes are split:
 * every single split point and many multi-way splits of recorded streams, including CRLF line
 * ends, a multi-byte UTF-8 character cut in half, comments and multi-line data.
 */
import { describe, expect, it } from 'vitest';
import { createSSEDecoder, parseSSE } from '../../src/sse/sse-parser.js';
import type { SSEEvent } from '../../src/ir/stream-part.js';

const ANTHROPIC_LIKE =
  'event: message_start\r\ndata: {"type":"message_start","message":{"id":"msg_1"}}\r\n\r\n' +
  ': keep-alive comment\r\n\r\n' +
  'event: content_block_delta\r\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Grüße, 世界 🌍"}}\r\n\r\n' +
  'event: ping\r\ndata: {"type": "ping"}\r\n\r\n' +
  'event: message_stop\r\ndata: {"type":"message_stop"}\r\n\r\n';

const OPENAI_LIKE =
  'data: {"choices":[{"delta":{"content":"héllo"}}]}\n\n' +
  ':comment\n' +
  'data: line one\ndata: line two\n\n' +
  'id: 7\ndata: {"choices":[{"delta":{"content":"€"}}]}\n\n' +
  'data: [DONE]\n\n';

const CR_ONLY = 'data: a\r\rdata: b\r\r';

function decodeChunks(chunks: Uint8Array[]): SSEEvent[] {
  const out: SSEEvent[] = [];
  const d = createSSEDecoder({ onEvent: (e) => out.push(e) });
  for (const c of chunks) d.feed(c);
  d.end();
  return out;
}

function mulberry32(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('SSE parser', () => {
  it('parses event names, data, ids, multi-line data and skips comments', () => {
    expect(parseSSE(OPENAI_LIKE)).toEqual([
      { data: '{"choices":[{"delta":{"content":"héllo"}}]}' },
      { data: 'line one\nline two' },
      { data: '{"choices":[{"delta":{"content":"€"}}]}', id: '7' },
      { data: '[DONE]' },
    ]);
    const a = parseSSE(ANTHROPIC_LIKE);
    expect(a.map((e) => e.event)).toEqual(['message_start', 'content_block_delta', 'ping', 'message_stop']);
    expect(JSON.parse(a[1]!.data).delta.text).toBe('Grüße, 世界 🌍');
    expect(parseSSE(CR_ONLY)).toEqual([{ data: 'a' }, { data: 'b' }]);
  });

  for (const [name, text] of Object.entries({ ANTHROPIC_LIKE, OPENAI_LIKE, CR_ONLY })) {
    it(`yields identical events for every two-way split of ${name}`, () => {
      const bytes = new TextEncoder().encode(text);
      const expected = parseSSE(text);
      expect(expected.length).toBeGreaterThan(1);
      for (let i = 0; i <= bytes.length; i++) {
        expect(decodeChunks([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(expected);
      }
    });

    it(`yields identical events for byte-by-byte and random multi-way splits of ${name}`, () => {
      const bytes = new TextEncoder().encode(text);
      const expected = parseSSE(text);
      expect(decodeChunks([...bytes].map((b) => Uint8Array.of(b)))).toEqual(expected);
      const rnd = mulberry32(42);
      for (let run = 0; run < 300; run++) {
        const chunks: Uint8Array[] = [];
        let at = 0;
        while (at < bytes.length) {
          const n = 1 + Math.floor(rnd() * 12);
          chunks.push(bytes.subarray(at, at + n));
          at += n;
        }
        expect(decodeChunks(chunks)).toEqual(expected);
      }
    });
  }

  it('strips one leading byte order mark, however the stream is split, and keeps any later one', () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('data: a\n\ndata: \ufeffb\n\n')]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]), `cut at ${cut}`).toEqual([{ data: 'a' }, { data: '\ufeffb' }]);
    }
    // Only the first: a stream that starts with two keeps the second (as the field name).
    expect(parseSSE(Buffer.from('\ufeff\ufeffdata: a\n\ndata: b\n\n'))).toEqual([{ data: 'b' }]);
  });

  it('replaces bytes that are not UTF-8 with U+FFFD, including a character cut off at the end', () => {
    const bytes = Buffer.concat([Buffer.from('data: x'), Buffer.from([0xff]), Buffer.from('y\n\ndata: z'), Buffer.from([0xe2, 0x82])]);
    const out: SSEEvent[] = [];
    const d = createSSEDecoder({ onEvent: (e) => out.push(e) });
    d.feed(bytes);
    d.feed(Buffer.from('\n\n'));
    d.end();
    expect(out).toEqual([{ data: 'x\ufffdy' }, { data: 'z\ufffd' }]);
  });

  it('discards an unterminated last event, as the specification says', () => {
    expect(parseSSE('data: complete\n\ndata: cut off')).toEqual([{ data: 'complete' }]);
  });

  it('reports an oversized event instead of buffering without bound', () => {
    const errors: string[] = [];
    const d = createSSEDecoder({ onEvent: () => {}, onError: (m) => errors.push(m) }, 1024);
    d.feed(`data: ${'x'.repeat(4096)}`);
    expect(errors).toEqual(['upstream sent an oversized stream event']);
  });
});
