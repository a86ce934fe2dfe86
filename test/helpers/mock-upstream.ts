/**
 * A scriptable HTTP server standing in for a provider. Tests enqueue replies written in the
 * provider's real wire format (see test/fixtures/*) and inspect the requests the gateway made.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** Path and query. */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: any;
}

export type SSEItem = { event?: string; data: string } | string;

export interface MockReply {
  status?: number;
  headers?: Record<string, string>;
  /** A JSON body. */
  json?: unknown;
  /** A raw text body. */
  text?: string;
  /** An SSE body: objects become `event:`/`data:` frames, strings are written verbatim. */
  sse?: SSEItem[];
  /** Delay between SSE frames (ms). */
  sseDelayMs?: number;
  /** Destroy the socket after writing this many SSE frames (a reset mid-stream). */
  resetAfterEvents?: number;
  /** Destroy the socket before sending anything. */
  resetBeforeHeaders?: boolean;
  /** Never answer (hang before headers). */
  hang?: boolean;
  /** Send headers then stop writing, leaving the connection open (hang mid-stream after N frames). */
  hangAfterEvents?: number;
  /** Delay before the headers (ms). */
  delayMs?: number;
}

export interface MockUpstream {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Replies used in order; when the queue is empty the default reply (or a 500) is used. */
  enqueue(...replies: MockReply[]): void;
  setDefault(reply: MockReply | ((req: RecordedRequest) => MockReply)): void;
  /** Resolves when the server sees a client connection close for a request (client abort). */
  closedRequests: number;
  close(): Promise<void>;
  reset(): void;
}

export function sseFrame(item: SSEItem): string {
  if (typeof item === 'string') return item;
  return `${item.event ? `event: ${item.event}\n` : ''}data: ${item.data}\n\n`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startMockUpstream(): Promise<MockUpstream> {
  const queue: MockReply[] = [];
  let fallback: MockReply | ((req: RecordedRequest) => MockReply) = {
    status: 500,
    json: { error: { message: 'mock upstream: no reply enqueued' } },
  };
  const sockets = new Set<Socket>();
  const state = {
    requests: [] as RecordedRequest[],
    closedRequests: 0,
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = body ? JSON.parse(body) : undefined;
    } catch {
      json = undefined;
    }
    const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, json };
    state.requests.push(rec);
    let finished = false;
    res.on('close', () => {
      if (!finished) state.closedRequests++;
    });
    const reply = queue.shift() ?? (typeof fallback === 'function' ? fallback(rec) : fallback);
    if (reply.delayMs) await sleep(reply.delayMs);
    if (reply.hang) return;
    if (reply.resetBeforeHeaders) {
      req.socket.destroy();
      return;
    }
    const status = reply.status ?? 200;
    if (reply.sse) {
      res.writeHead(status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...reply.headers });
      res.flushHeaders();
      let n = 0;
      for (const item of reply.sse) {
        if (reply.resetAfterEvents !== undefined && n >= reply.resetAfterEvents) {
          await sleep(20); // let what was written reach the client first
          req.socket.destroy();
          return;
        }
        if (reply.hangAfterEvents !== undefined && n >= reply.hangAfterEvents) return;
        if (res.destroyed) return;
        await new Promise<void>((resolve) => res.write(sseFrame(item), () => resolve()));
        n++;
        if (reply.sseDelayMs) await sleep(reply.sseDelayMs);
      }
      if (reply.resetAfterEvents !== undefined && n >= reply.resetAfterEvents) {
        await sleep(20);
        req.socket.destroy();
        return;
      }
      if (reply.hangAfterEvents !== undefined) return;
      finished = true;
      res.end();
      return;
    }
    const text = reply.json !== undefined ? JSON.stringify(reply.json) : (reply.text ?? '');
    res.writeHead(status, {
      'content-type': reply.json !== undefined ? 'application/json' : 'text/plain',
      ...reply.headers,
    });
    finished = true;
    res.end(text);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return state.requests;
    },
    get closedRequests() {
      return state.closedRequests;
    },
    enqueue: (...r) => void queue.push(...r),
    setDefault: (r) => {
      fallback = r;
    },
    reset: () => {
      queue.length = 0;
      state.requests.length = 0;
      state.closedRequests = 0;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  } as MockUpstream;
}
