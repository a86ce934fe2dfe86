/**
 * HTTPS: TLS 1.3 only, HTTP/2 by ALPN with HTTP/1.1 alongside, streaming over both, HSTS on
 * HTTPS answers and never on plain HTTP, certificate errors at start, draining with HTTP/2
 * sessions open; and what `http.trustProxy` changes. The certificate is made at test time.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import OpenAI from 'openai';
import pino from 'pino';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load-config.js';
import { HTTP_DEFAULTS } from '../../src/config/schema.js';
import type { GatewayContext } from '../../src/gateway/context.js';
import { AccessLog } from '../../src/server/access-log.js';
import { buildApp } from '../../src/server/app.js';
import { startGateway } from '../../src/server/start.js';
import { openaiTextStream } from '../fixtures/openai.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from '../helpers/gateway.js';

const HSTS = 'max-age=31536000';
const BODY_LIMIT = 1024 * 1024;

let dir: string;
let certPath: string;
let keyPath: string;
let ca: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mr-tls-'));
  certPath = join(dir, 'cert.pem');
  keyPath = join(dir, 'key.pem');
  // prettier-ignore
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1', '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'ignore' });
  ca = await readFile(certPath);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const models = (mock: MockUpstream) => ({
  providers: [{ id: 'up', type: 'openai' as const, baseUrl: `${mock.url}/v1`, apiKey: 'sk-upstream' }],
  models: [{ id: 'test/chat', endpoints: [{ provider: 'up', model: 'gpt-4o-mini' }] }],
});

interface H2Answer {
  headers: H2Headers;
  body: string;
}

function h2Request(session: ClientHttp2Session, headers: Record<string, string>, body?: string): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers);
    let answer: H2Headers = {};
    let text = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (answer = h));
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve({ headers: answer, body: text }));
    req.on('error', reject);
    req.end(body);
  });
}

function h1Request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; httpVersion: string; headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = httpsRequest(url, { ca, method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, httpVersion: res.httpVersion, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The official SDK over undici, trusting the test CA; `allowH2` lets ALPN pick HTTP/2. */
function sdk(t: TestGateway, allowH2: boolean): { client: OpenAI; agent: Agent } {
  const agent = new Agent({ connect: { ca }, allowH2 });
  const fetchWithCa = (url: unknown, init?: object) => undiciFetch(url as string, { ...init, dispatcher: agent });
  const client = new OpenAI({
    apiKey: t.apiKey,
    baseURL: `${t.url}/v1`,
    maxRetries: 0,
    timeout: 10_000,
    fetch: fetchWithCa as unknown as typeof fetch,
  });
  return { client, agent };
}

describe('HTTPS', () => {
  let mock: MockUpstream;
  let t: TestGateway;
  let port: number;
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);

  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway({
      listen: { host: '127.0.0.1', port: 0, tls: { cert: certPath, key: keyPath } },
      limits: { bodyBytes: BODY_LIMIT },
      ...models(mock),
    });
    port = Number(new URL(t.url).port);
    process.on('warning', onWarning);
  });
  afterAll(async () => {
    process.off('warning', onWarning);
    await t.close();
    await mock.close();
  });
  beforeEach(() => mock.reset());

  it('serves on an https:// URL', () => {
    expect(t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('refuses a TLS 1.2 handshake and accepts TLS 1.3 with ALPN h2 or http/1.1', async () => {
    const err = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => {
        s.destroy();
        reject(new Error('a TLS 1.2 handshake succeeded'));
      });
      s.on('error', resolve);
    });
    expect(`${err.code} ${err.message}`).toMatch(/protocol version|unsupported protocol|alert/i);

    for (const [offered, chosen] of [
      [['h2', 'http/1.1'], 'h2'],
      [['http/1.1'], 'http/1.1'],
    ] as const) {
      const got = await new Promise<{ version: string | null; alpn: string | false | null }>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: [...offered] }, () => {
          resolve({ version: s.getProtocol(), alpn: s.alpnProtocol });
          s.destroy();
        });
        s.on('error', reject);
      });
      expect(got).toEqual({ version: 'TLSv1.3', alpn: chosen });
    }
  });

  it('answers HTTP/2 requests, with HSTS', async () => {
    const session = h2connect(t.url, { ca });
    try {
      const health = await h2Request(session, { ':path': '/healthz' });
      expect(health.headers[':status']).toBe(200);
      expect(health.headers['strict-transport-security']).toBe(HSTS);
      expect(JSON.parse(health.body)).toEqual({ status: 'ok' });

      const list = await h2Request(session, { ':path': '/v1/models', authorization: `Bearer ${t.apiKey}` });
      expect(list.headers[':status']).toBe(200);
      expect(JSON.parse(list.body).data.map((m: { id: string }) => m.id)).toEqual(['test/chat']);

      // Errors too: a 401 and a 404 carry the header.
      const denied = await h2Request(session, { ':path': '/v1/models' });
      expect(denied.headers[':status']).toBe(401);
      expect(denied.headers['strict-transport-security']).toBe(HSTS);
      const missing = await h2Request(session, { ':path': '/nowhere' });
      expect(missing.headers[':status']).toBe(404);
      expect(missing.headers['strict-transport-security']).toBe(HSTS);
    } finally {
      session.close();
    }
  });

  it('answers HTTP/1.1 requests, with HSTS', async () => {
    const res = await h1Request(`${t.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.httpVersion).toBe('1.1');
    expect(res.headers['strict-transport-security']).toBe(HSTS);
  });

  it('streams a chat completion over HTTP/2 as SSE, without connection-level headers', async () => {
    mock.enqueue(openaiTextStream(['Hel', 'lo']));
    const session = h2connect(t.url, { ca });
    try {
      const res = await h2Request(
        session,
        { ':method': 'POST', ':path': '/v1/chat/completions', authorization: `Bearer ${t.apiKey}`, 'content-type': 'application/json' },
        JSON.stringify({ model: 'test/chat', stream: true, messages: [{ role: 'user', content: 'Hi' }] }),
      );
      expect(res.headers[':status']).toBe(200);
      expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(res.headers['strict-transport-security']).toBe(HSTS);
      expect(res.headers.connection).toBeUndefined();
      const frames = res.body.split('\n\n').filter(Boolean);
      expect(frames.at(-1)).toBe('data: [DONE]');
      const text = frames
        .slice(0, -1)
        .map((f) => JSON.parse(f.slice('data: '.length)).choices[0]?.delta?.content ?? '')
        .join('');
      expect(text).toBe('Hello');
    } finally {
      session.close();
    }
    // Node's HTTP/2 layer warns when a handler sets `connection`; the server drops it first.
    expect(warnings.map((w) => w.message).join('\n')).not.toMatch(/connection header/i);
  });

  it('413 over HTTP/2 for a body over the limit, then resets the stream instead of reading the rest', async () => {
    const session = h2connect(t.url, { ca });
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': '/v1/chat/completions',
        authorization: `Bearer ${t.apiKey}`,
        'content-type': 'application/json',
      });
      let status = 0;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: string) => (body += c));
      req.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => req.once('close', () => resolve()));
      let isClosed = false;
      void closed.then(() => (isClosed = true));
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const total = 64 * BODY_LIMIT;
      let sent = 0;
      while (!isClosed && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) await Promise.race([new Promise((r) => req.once('drain', r)), closed]);
      }
      await closed;
      expect(status).toBe(413);
      expect(JSON.parse(body).error.code).toBe('MR_ERR_PAYLOAD_TOO_LARGE');
      expect(req.rstCode).toBe(0); // NO_ERROR: the answer is complete, the upload is not wanted
      expect(sent).toBeLessThan(8 * BODY_LIMIT);
      expect(mock.requests).toHaveLength(0);
      // The connection is still good for the next request.
      expect((await h2Request(session, { ':path': '/healthz' })).headers[':status']).toBe(200);
    } finally {
      session.close();
    }
  });

  for (const allowH2 of [true, false]) {
    it(`streams a chat completion through the openai SDK over ${allowH2 ? 'HTTP/2' : 'HTTP/1.1'}`, async () => {
      mock.enqueue(openaiTextStream(['Hel', 'lo', ' world']));
      const versions: string[] = [];
      const onRequest = (req: { httpVersion: string }) => versions.push(req.httpVersion);
      t.gw.app.server.on('request', onRequest);
      const { client, agent } = sdk(t, allowH2);
      try {
        const stream = await client.chat.completions.create({
          model: 'test/chat',
          messages: [{ role: 'user', content: 'Hello' }],
          stream: true,
          stream_options: { include_usage: true },
        });
        let text = '';
        let usage: OpenAI.CompletionUsage | null | undefined;
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta.content ?? '';
          if (chunk.usage) usage = chunk.usage;
        }
        expect(text).toBe('Hello world');
        expect(usage?.completion_tokens).toBe(3);
        expect(versions).toEqual([allowH2 ? '2.0' : '1.1']);
      } finally {
        t.gw.app.server.off('request', onRequest);
        await agent.close();
      }
    });
  }
});

describe('timeouts over HTTPS', () => {
  const HEADERS_MS = 300;
  const REQUEST_MS = 600;
  let mock: MockUpstream;
  let t: TestGateway;
  let port: number;

  beforeAll(async () => {
    mock = await startMockUpstream();
    t = await startTestGateway({
      listen: { host: '127.0.0.1', port: 0, tls: { cert: certPath, key: keyPath } },
      http: { headersTimeoutMs: HEADERS_MS, requestTimeoutMs: REQUEST_MS },
      ...models(mock),
    });
    port = Number(new URL(t.url).port);
  });
  afterAll(async () => {
    await t.close();
    await mock.close();
  });

  it('closes a connection that never completes the TLS handshake', async () => {
    const socket = netConnect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const started = Date.now();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const ms = Date.now() - started;
    expect(ms).toBeGreaterThanOrEqual(HEADERS_MS - 50);
    expect(ms).toBeLessThan(HEADERS_MS * 4);
  });

  it('answers 408 and closes when HTTP/1.1 headers dribble in over TLS', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const started = Date.now();
    socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
    const dribble = setInterval(() => socket.write('x-slow: a\r\n'), 50);
    await closed;
    clearInterval(dribble);
    expect(Date.now() - started).toBeLessThan(HEADERS_MS * 4);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('cancels an HTTP/2 request whose body is not in within http.requestTimeoutMs', async () => {
    const session = h2connect(t.url, { ca });
    try {
      const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
      req.on('error', () => undefined);
      const started = Date.now();
      req.write('{');
      const dribble = setInterval(() => req.write(' '), 50);
      await new Promise<void>((resolve) => req.once('close', () => resolve()));
      clearInterval(dribble);
      const ms = Date.now() - started;
      expect(req.rstCode).toBe(8); // NGHTTP2_CANCEL
      expect(ms).toBeGreaterThanOrEqual(REQUEST_MS - 50);
      expect(ms).toBeLessThan(REQUEST_MS * 3);
      // The session itself is still usable.
      expect((await h2Request(session, { ':path': '/healthz' })).headers[':status']).toBe(200);
    } finally {
      session.close();
    }
  });
});

describe('plain HTTP', () => {
  it('never sends HSTS', async () => {
    const mock = await startMockUpstream();
    const t = await startTestGateway(models(mock));
    try {
      expect(t.url).toMatch(/^http:\/\//);
      const res = await fetch(`${t.url}/healthz`);
      expect(res.status).toBe(200);
      expect(res.headers.get('strict-transport-security')).toBeNull();
      const denied = await fetch(`${t.url}/v1/models`);
      expect(denied.status).toBe(401);
      expect(denied.headers.get('strict-transport-security')).toBeNull();
    } finally {
      await t.close();
      await mock.close();
    }
  });
});

describe('certificate errors at start', () => {
  async function startWith(tls: { cert: string; key: string }) {
    const data = await mkdtemp(join(tmpdir(), 'mr-tls-start-'));
    try {
      const { config, problems } = validateConfig({
        listen: { host: '127.0.0.1', port: 0, tls },
        database: `sqlite:${join(data, 'db')}`,
        dataDir: data,
        secret: TEST_SECRET,
        log: { level: 'silent' },
      });
      if (!config) throw new Error(JSON.stringify(problems));
      const gw = await startGateway(config, { listen: false });
      await gw.stop();
      return undefined;
    } catch (err) {
      return err as Error;
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  }

  it('names the file that cannot be read', async () => {
    const missing = join(dir, 'missing.pem');
    const err = await startWith({ cert: missing, key: keyPath });
    expect(err?.message).toBe(`listen.tls.cert: cannot read '${missing}' (ENOENT)`);
    const err2 = await startWith({ cert: certPath, key: dir });
    expect(err2?.message).toBe(`listen.tls.key: cannot read '${dir}' (EISDIR)`);
  });

  it('names both files when they are not a usable PEM pair', async () => {
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a key\n');
    const err = await startWith({ cert: certPath, key: junk });
    expect(err?.message).toContain(`listen.tls: the certificate '${certPath}' and key '${junk}' are not a usable PEM pair`);
  });
});

describe('shutdown over HTTPS', () => {
  it('drains promptly with an idle HTTP/2 session and an idle HTTP/1.1 connection open', async () => {
    const mock = await startMockUpstream();
    const t = await startTestGateway({ listen: { host: '127.0.0.1', port: 0, tls: { cert: certPath, key: keyPath } }, ...models(mock) });
    const session = h2connect(t.url, { ca });
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    expect((await h2Request(session, { ':path': '/healthz' })).headers[':status']).toBe(200);
    const agent = new Agent({ connect: { ca } });
    const res = await undiciFetch(`${t.url}/healthz`, { dispatcher: agent });
    expect(res.status).toBe(200);
    await res.text();
    try {
      const started = Date.now();
      await t.close(); // shutdown.graceMs is 25 s: an idle connection must not hold it up
      expect(Date.now() - started).toBeLessThan(2_000);
      await goaway;
    } finally {
      session.destroy();
      await agent.close();
      await mock.close();
    }
  });
});

describe('trust proxy', () => {
  /** The app with one extra route that shows what Fastify derived from the connection. */
  async function appWith(trustProxy: boolean | string | string[]) {
    const logger = pino({ level: 'silent' });
    const app = buildApp({
      gateway: {} as GatewayContext,
      accessLog: new AccessLog(logger, { write: () => true }),
      logger,
      bodyLimit: 1024,
      http: { ...HTTP_DEFAULTS, trustProxy },
    });
    app.get('/peer', async (request) => ({ ip: request.ip, protocol: request.protocol, host: request.host }));
    await app.ready();
    return app;
  }
  const forwarded = { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' };

  it('believes X-Forwarded-* only from the configured proxies', async () => {
    const app = await appWith(['10.0.0.0/8', '192.0.2.1']);
    try {
      const viaProxy = await app.inject({ url: '/peer', remoteAddress: '10.1.2.3', headers: forwarded });
      expect(viaProxy.json()).toEqual({ ip: '203.0.113.7', protocol: 'https', host: 'api.example.com' });
      const direct = await app.inject({ url: '/peer', remoteAddress: '198.51.100.9', headers: { ...forwarded, host: 'gw.local' } });
      expect(direct.json()).toEqual({ ip: '198.51.100.9', protocol: 'http', host: 'gw.local' });
    } finally {
      await app.close();
    }
  });

  it('believes nothing by default', async () => {
    const app = await appWith(HTTP_DEFAULTS.trustProxy);
    try {
      const res = await app.inject({ url: '/peer', remoteAddress: '10.1.2.3', headers: { ...forwarded, host: 'gw.local' } });
      expect(res.json()).toEqual({ ip: '10.1.2.3', protocol: 'http', host: 'gw.local' });
    } finally {
      await app.close();
    }
  });

  it('accepts addresses, CIDR ranges and names; refuses anything else, hop counts included', () => {
    for (const ok of [true, false, 'loopback', '10.0.0.0/8', ['127.0.0.1', '::1', 'fd00::/8', 'uniquelocal']]) {
      expect(validateConfig({ http: { trustProxy: ok } }).problems).toEqual([]);
    }
    for (const bad of [1, 'proxy.example.com', '10.0.0.0/33', ['10.0.0.1', 'nope'], []]) {
      const { problems } = validateConfig({ http: { trustProxy: bad } });
      expect(problems.length).toBeGreaterThan(0);
      for (const p of problems) expect(p.path).toMatch(/^http\.trustProxy(\[\d+\])?$/);
    }
  });

  it('refuses a headers timeout longer than the request timeout', () => {
    const { problems } = validateConfig({ http: { headersTimeoutMs: 60_000, requestTimeoutMs: 30_000 } });
    expect(problems).toEqual([{ path: 'http.headersTimeoutMs', message: 'must not exceed requestTimeoutMs (30000)' }]);
  });
});
