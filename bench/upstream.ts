/**
 * A fixed-response OpenAI upstream: POST /v1/chat/completions answers a `chat.completion`
 * object, or with `stream: true` the whole SSE stream written at once (no delays). Listens on
 * 127.0.0.1 (port from argv[2], default 0) and prints `{"ready":true,"url":…}`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { announce, stopOnParentExit } from './child.js';
import { COMPLETION_JSON, COMPLETION_SSE } from './payloads.js';

const JSON_BODY = Buffer.from(COMPLETION_JSON);
const SSE_BODY = Buffer.from(COMPLETION_SSE);
const NOT_FOUND = Buffer.from(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error', param: null, code: null } }));

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': NOT_FOUND.length });
      res.end(NOT_FOUND);
      return;
    }
    let stream = false;
    try {
      stream = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { stream?: unknown }).stream === true;
    } catch {
      /* a bad body gets the plain answer; the bench never sends one */
    }
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(SSE_BODY);
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': JSON_BODY.length });
      res.end(JSON_BODY);
    }
  });
});
server.keepAliveTimeout = 120_000;

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  announce({ url: `http://127.0.0.1:${port}` });
});

stopOnParentExit(
  () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
);
