/**
 * Slow and hostile clients against the running gateway: headers dribbled slower than the
 * headers timeout, a body dribbled slower than the request timeout, idle keep-alive
 * connections, bodies over the size limit (streamed, or announced by Content-Length), JSON
 * nested too deep or with too many items, invalid UTF-8 and invalid JSON. Every answer the
 * gateway gives is in OpenAI's error shape; none reaches an upstream.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openaiText } from '../fixtures/openai.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { assertSchema } from '../helpers/openai-schema.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const BODY_LIMIT = 2 * 1024 * 1024;
const HEADERS_TIMEOUT_MS = 500;
const REQUEST_TIMEOUT_MS = 1_000;
const KEEP_ALIVE_TIMEOUT_MS = 500;

interface RawExchange {
  /** Everything the server sent. */
  received: string;
  /** ms from the first byte written to the connection's close. */
  closedAfterMs: number;
}

/** The status and parsed JSON body of a raw HTTP/1.1 answer. */
function parseRaw(text: string): { status: number; headers: string; json: any } {
  const end = text.indexOf('\r\n\r\n');
  const head = text.slice(0, end);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  let body = text.slice(end + 4);
  if (/transfer-encoding: chunked/i.test(head)) body = body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '');
  return { status, headers: head, json: JSON.parse(body) };
}

describe('slow and hostile clients', () => {
  let mock: MockUpstream;
  let t: TestGateway;
  let port: number;

  const post = (path: string, body: string | Uint8Array, headers: Record<string, string> = {}) =>
    fetch(`${t.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json', ...headers },
      body,
    });

  async function expectError(res: Response, status: number, code: string): Promise<{ message: string }> {
    expect(res.status).toBe(status);
    const body = (await res.json()) as any;
    assertSchema('ErrorResponse', body);
    expect(body.error.code).toBe(code);
    return body.error;
  }

  /** Opens a raw connection, runs `drive` on it, and waits for the server to close it. */
  async function raw(drive: (socket: Socket, closed: Promise<void>) => Promise<void> | void): Promise<RawExchange> {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined); // writes after the server's close
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const started = Date.now();
    try {
      await drive(socket, closed);
      await closed;
    } finally {
      socket.destroy();
    }
    return { received, closedAfterMs: Date.now() - started };
  }

  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway({
      limits: { bodyBytes: BODY_LIMIT },
      http: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS },
      providers: [{ id: 'up', type: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'sk-upstream' }],
      models: [
        { id: 'test/chat', endpoints: [{ provider: 'up', model: 'gpt-4o-mini' }] },
        { id: 'test/embed', kind: 'embedding', endpoints: [{ provider: 'up', model: 'text-embedding-3-small' }] },
      ],
    });
    port = Number(new URL(t.url).port);
  });
  afterAll(async () => {
    await t.close();
    await mock.close();
  });
  beforeEach(() => mock.reset());

  describe('timeouts', () => {
    it('closes a connection whose headers arrive slower than http.headersTimeoutMs (slowloris), with a 408', async () => {
      let wrote = 0;
      const ex = await raw(async (socket, closed) => {
        socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n');
        // One header line every 100 ms: bytes keep coming, the headers never end.
        let stop = false;
        void closed.then(() => (stop = true));
        while (!stop && wrote < 100) {
          await new Promise((r) => setTimeout(r, 100));
          if (!stop) socket.write(`x-slow-${wrote++}: a\r\n`);
        }
      });
      expect(wrote).toBeGreaterThan(2); // the client kept sending
      expect(ex.closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
      expect(ex.closedAfterMs).toBeLessThan(HEADERS_TIMEOUT_MS * 3);
      const res = parseRaw(ex.received);
      expect(res.status).toBe(408);
      expect(res.headers).toMatch(/\r\nconnection: close/i);
      assertSchema('ErrorResponse', res.json);
      expect(res.json.error.message).toBe('The request was not received in time.');
    });

    it('closes a connection whose body arrives slower than http.requestTimeoutMs, with a 408', async () => {
      const ex = await raw(async (socket, closed) => {
        socket.write(
          `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${t.apiKey}\r\n` +
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
        );
        let stop = false;
        void closed.then(() => (stop = true));
        for (let i = 0; !stop && i < 100; i++) {
          await new Promise((r) => setTimeout(r, 100));
          if (!stop) socket.write(' ');
        }
      });
      expect(ex.closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
      expect(ex.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS * 3);
      const res = parseRaw(ex.received);
      expect(res.status).toBe(408);
      assertSchema('ErrorResponse', res.json);
      expect(mock.requests).toHaveLength(0);
    });

    it('closes an idle keep-alive connection after http.keepAliveTimeoutMs', async () => {
      let answeredAt = 0;
      const started = Date.now();
      const ex = await raw(async (socket) => {
        socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
        await new Promise<void>((resolve) => socket.once('data', () => resolve()));
        answeredAt = Date.now() - started;
      });
      expect(ex.received).toMatch(/^HTTP\/1\.1 200 /);
      const idleMs = ex.closedAfterMs - answeredAt;
      // Node closes an idle connection up to a second after the advertised keep-alive timeout.
      expect(idleMs).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS - 50);
      expect(idleMs).toBeLessThan(KEEP_ALIVE_TIMEOUT_MS + 1_500);
    });
  });

  describe('malformed HTTP', () => {
    it('400 for a request that is not HTTP, 431 for headers over 16 KiB, both in OpenAI error shape', async () => {
      const garbage = parseRaw((await raw((socket) => void socket.write('HELLO THERE\r\n\r\n'))).received);
      expect(garbage.status).toBe(400);
      assertSchema('ErrorResponse', garbage.json);
      expect(garbage.json.error.message).toBe('The request is not valid HTTP.');

      const big = parseRaw(
        (await raw((socket) => void socket.write(`GET /healthz HTTP/1.1\r\nHost: localhost\r\nx-big: ${'a'.repeat(17 * 1024)}\r\n\r\n`))).received,
      );
      expect(big.status).toBe(431);
      assertSchema('ErrorResponse', big.json);
    });
  });

  describe('body size', () => {
    it('413 for a streamed (chunked) body over limits.bodyBytes, and the connection is cut without reading the rest', async () => {
      const total = 64 * BODY_LIMIT;
      const chunk = Buffer.alloc(64 * 1024, 0x20); // JSON whitespace
      const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
      let sent = 0;
      const ex = await raw(async (socket, closed) => {
        let isClosed = false;
        void closed.then(() => (isClosed = true));
        socket.write(
          `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${t.apiKey}\r\n` +
            'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
        );
        while (!isClosed && sent < total) {
          sent += chunk.length;
          if (!socket.write(frame)) await Promise.race([new Promise((r) => socket.once('drain', r)), closed]);
        }
      });
      // The server stopped reading just past the limit (what remains is socket buffers).
      expect(sent).toBeLessThan(8 * BODY_LIMIT);
      const res = parseRaw(ex.received);
      expect(res.status).toBe(413);
      expect(res.headers).toMatch(/\r\nconnection: close/i);
      assertSchema('ErrorResponse', res.json);
      expect(res.json.error.code).toBe('MR_ERR_PAYLOAD_TOO_LARGE');
      expect(mock.requests).toHaveLength(0);
    });

    it('413 at once for a Content-Length over the limit, before any of the body is sent', async () => {
      const ex = await raw((socket) => {
        socket.write(
          `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${t.apiKey}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${10 * 1024 ** 3}\r\n\r\n`,
        );
      });
      expect(ex.closedAfterMs).toBeLessThan(1_000);
      const res = parseRaw(ex.received);
      expect(res.status).toBe(413);
      assertSchema('ErrorResponse', res.json);
      expect(res.json.error.code).toBe('MR_ERR_PAYLOAD_TOO_LARGE');
    });
  });

  describe('JSON shape', () => {
    const chat = (extra: string) =>
      `{"model":"test/chat","messages":[{"role":"user","content":"hi"}],"metadata":${extra}}`;

    it('400 for nesting deeper than http.maxJsonDepth (64), answered without parsing', async () => {
      // depth: the body object, metadata's object, then the arrays
      const e = await expectError(await post('/v1/chat/completions', chat(`{"a":${'['.repeat(63)}${']'.repeat(63)}}`)), 400, 'MR_ERR_INVALID_REQUEST');
      expect(e.message).toBe('The request body nests arrays and objects deeper than 64 levels.');
      // A million levels: V8 takes about a second to parse them; the scan refuses them at once.
      const started = performance.now();
      const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
      await expectError(await post('/v1/chat/completions', deep), 400, 'MR_ERR_INVALID_REQUEST');
      expect(performance.now() - started).toBeLessThan(500);
      expect(mock.requests).toHaveLength(0);
    });

    it('accepts nesting of exactly http.maxJsonDepth', async () => {
      mock.enqueue(openaiText({ text: 'ok' }));
      const res = await post('/v1/chat/completions', chat(`{"a":${'['.repeat(62)}${']'.repeat(62)}}`));
      expect(res.status).toBe(200);
      expect(mock.requests).toHaveLength(1);
    });

    it('400 for an array or object with more than http.maxJsonItems (100000) items', async () => {
      const items = (n: number) => Array.from({ length: n }, () => '"a"').join(',');
      const e = await expectError(await post('/v1/embeddings', `{"model":"test/embed","input":[${items(100_001)}]}`), 400, 'MR_ERR_INVALID_REQUEST');
      expect(e.message).toBe('The request body has an array or object with more than 100000 items.');
      const members = Array.from({ length: 100_001 }, (_, i) => `"k${i}":0`).join(',');
      await expectError(await post('/v1/chat/completions', chat(`{${members}}`)), 400, 'MR_ERR_INVALID_REQUEST');
      expect(mock.requests).toHaveLength(0);
      // 100000 items pass the parser (and are refused, if at all, for another reason).
      const res = await post('/v1/embeddings', `{"model":"test/embed","input":[${items(100_000)}]}`);
      expect(((await res.json()) as any).error?.message ?? '').not.toMatch(/items/);
    });

    it('400 for a body that is not UTF-8', async () => {
      const body = Buffer.concat([Buffer.from('{"model":"test/chat","messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}]}')]);
      const e = await expectError(await post('/v1/chat/completions', body), 400, 'MR_ERR_INVALID_JSON');
      expect(e.message).toBe('The request body is not valid UTF-8.');
      expect(mock.requests).toHaveLength(0);
    });

    it('400 for invalid JSON, not quoting the body', async () => {
      for (const body of ['{"model": "test/chat", "messages": [ secret', '{"a":1}}', '"unterminated', ']', '{"a":1,}', 'nul']) {
        const e = await expectError(await post('/v1/chat/completions', body), 400, 'MR_ERR_INVALID_JSON');
        expect(e.message).toBe('The request body is not valid JSON.');
      }
      expect(mock.requests).toHaveLength(0);
    });

    it('400 for prototype keys', async () => {
      const e = await expectError(await post('/v1/chat/completions', chat('{"__proto__":{"admin":true}}')), 400, 'MR_ERR_INVALID_REQUEST');
      expect(e.message).toContain('__proto__');
      await expectError(await post('/v1/chat/completions', chat('{"\\u005f_proto__":{}}')), 400, 'MR_ERR_INVALID_REQUEST');
      await expectError(await post('/v1/chat/completions', chat('{"constructor":{"prototype":{}}}')), 400, 'MR_ERR_INVALID_REQUEST');
      await expectError(await post('/v1/chat/completions', chat('{"\\u0063onstructor":{"\\u0070rototype":{}}}')), 400, 'MR_ERR_INVALID_REQUEST');
      expect(mock.requests).toHaveLength(0);
    });

    it('keeps strings with brackets, commas and escaped quotes out of the count', async () => {
      mock.enqueue(openaiText({ text: 'ok' }));
      const tricky = JSON.stringify({ s: `${'['.repeat(100)}\\"${','.repeat(200_000)}"\\\\` });
      const res = await post('/v1/chat/completions', chat(tricky));
      expect(res.status).toBe(200);
    });
  });
});
