/**
 * The ceiling: `node:http` in, one undici `Pool` (keep-alive, 128 connections) out. Forwards
 * method, path and body; pipes status, content-type, content-length and body back. No auth, no
 * parsing. Upstream URL from argv[2]; listens on 127.0.0.1 and prints `{"ready":true,"url":…}`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
import { announce, stopOnParentExit } from './child.js';

const upstream = process.argv[2];
if (!upstream) throw new Error('usage: bare-proxy.ts <upstream-url>');

const pool = new Pool(new URL(upstream).origin, {
  connections: 128,
  pipelining: 1,
  keepAliveTimeout: 30_000,
  keepAliveMaxTimeout: 600_000,
});

function fail(res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(502, { 'content-type': 'application/json' });
  res.end('{"error":{"message":"bad gateway"}}');
}

/** Collects the (small) request body, then forwards it with its content-type. */
function forward(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('error', () => res.destroy());
  req.on('end', () => {
    const headers: Record<string, string> = {};
    const ct = req.headers['content-type'];
    if (ct) headers['content-type'] = ct;
    const opts = {
      method: req.method as Dispatcher.HttpMethod,
      path: req.url ?? '/',
      headers,
      body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks),
    };
    // pool.request + pipe, the same undici API the gateway uses. (stream/promises' `pipeline`
    // was measured 3x slower here: it builds an AbortController and a DOMException per call.)
    pool.request(opts).then(
      (up) => {
        res.writeHead(up.statusCode, pick(up.headers));
        up.body.on('error', () => res.destroy());
        up.body.pipe(res);
      },
      () => fail(res),
    );
  });
}

function pick(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  const ct = h['content-type'];
  if (typeof ct === 'string') out['content-type'] = ct;
  const cl = h['content-length'];
  if (typeof cl === 'string') out['content-length'] = cl;
  return out;
}

const server = createServer((req, res) => {
  forward(req, res);
});
server.keepAliveTimeout = 120_000;

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  announce({ url: `http://127.0.0.1:${port}` });
});

stopOnParentExit(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await pool.close();
});
