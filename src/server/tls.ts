/**
 * HTTPS: the certificate and key read at start, and the server that serves them — TLS 1.3 only,
 * HTTP/2 by ALPN with HTTP/1.1 alongside, `Strict-Transport-Security` on every answer.
 *
 * Node's HTTP/2 server lacks what the rest of the gateway relies on from the HTTP/1 server
 * (Fastify's `forceCloseConnections: 'idle'`, the drain in drain.ts): `closeIdleConnections()`
 * and `closeAllConnections()`. They are added here, over HTTP/2 sessions and HTTP/1.1
 * connections alike.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  constants as h2constants,
  createSecureServer,
  Http2ServerResponse,
  type Http2SecureServer,
  type Http2ServerRequest,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
} from 'node:http2';
import type { Socket } from 'node:net';
import { createSecureContext, type TLSSocket } from 'node:tls';
import type { TlsConfig } from '../config/schema.js';

/** The PEM contents of `listen.tls`. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

/** Sent on every HTTPS answer: browsers and other HSTS-aware clients use HTTPS only for a year. */
export const HSTS_VALUE = 'max-age=31536000';

/**
 * Reads `listen.tls.cert` and `listen.tls.key`, and checks that they form a usable pair, with an
 * error naming the file (and field) at fault.
 */
export async function loadTlsMaterial(tls: TlsConfig): Promise<TlsMaterial> {
  const read = async (path: string, field: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
      throw new Error(`listen.tls.${field}: cannot read '${path}' (${code})`);
    }
  };
  const cert = await read(tls.cert, 'cert');
  const key = await read(tls.key, 'key');
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    // OpenSSL's reason only (e.g. "key values mismatch"), never key material.
    const reason = (err as Error).message.split('\n')[0];
    throw new Error(`listen.tls: the certificate '${tls.cert}' and key '${tls.key}' are not a usable PEM pair (${reason})`);
  }
  return { cert, key };
}

/** Connection-level headers HTTP/2 forbids (RFC 9113 §8.2.2); an HTTP/1-minded handler may still set them. */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * Drops connection-level headers instead of sending them (which HTTP/2 forbids) or warning about
 * them (Node's compatibility layer does, once per process). The SSE writer sets
 * `connection: keep-alive` for HTTP/1.1 clients.
 */
class GatewayHttp2Response extends Http2ServerResponse {
  override setHeader(name: string, value: number | string | readonly string[]): void {
    if (CONNECTION_HEADERS.has(name.toLowerCase())) return;
    super.setHeader(name, value);
  }

  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders): this;
  override writeHead(statusCode: number, statusMessage: string, headers?: OutgoingHttpHeaders): this;
  override writeHead(statusCode: number, a?: string | OutgoingHttpHeaders, b?: OutgoingHttpHeaders): this {
    const headers = typeof a === 'string' ? b : a;
    if (headers && !Array.isArray(headers)) {
      let clean: OutgoingHttpHeaders | undefined;
      for (const name of Object.keys(headers)) {
        if (!CONNECTION_HEADERS.has(name.toLowerCase())) continue;
        clean ??= { ...headers };
        delete clean[name];
      }
      // The status message is meaningless in HTTP/2; it is dropped rather than warned about.
      return super.writeHead(statusCode, clean ?? headers);
    }
    return super.writeHead(statusCode, headers);
  }
}

export interface TlsServerOptions {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** How often Node checks HTTP/1.1 connections against the header and request timeouts, ms. */
  connectionsCheckingIntervalMs: number;
}

type Handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;

/** Concurrent requests (streams) per HTTP/2 connection; Node's default is unbounded. */
const MAX_CONCURRENT_STREAMS = 128;

/**
 * The HTTPS server: TLS 1.3 only, `h2` and `http/1.1` by ALPN, the same timeouts as the plain
 * server, HSTS on every answer.
 */
export function createTlsServer(material: TlsMaterial, opts: TlsServerOptions, handler: Handler): Http2SecureServer {
  const server = createSecureServer(
    {
      cert: material.cert,
      key: material.key,
      minVersion: 'TLSv1.3',
      allowHTTP1: true,
      // A client gets as long to finish the TLS handshake as to send its request headers.
      handshakeTimeout: opts.headersTimeoutMs,
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
      Http2ServerResponse: GatewayHttp2Response as typeof Http2ServerResponse,
    },
    (req, res) => {
      res.setHeader('strict-transport-security', HSTS_VALUE);
      handler(req, res);
    },
  );

  // HTTP/1.1 over TLS is served by Node's HTTP/1 machinery, which reads these from the server.
  const h1 = server as unknown as {
    headersTimeout: number;
    requestTimeout: number;
    keepAliveTimeout: number;
    connectionsCheckingInterval: number;
  };
  h1.headersTimeout = opts.headersTimeoutMs;
  h1.requestTimeout = opts.requestTimeoutMs;
  h1.keepAliveTimeout = opts.keepAliveTimeoutMs;
  h1.connectionsCheckingInterval = opts.connectionsCheckingIntervalMs;

  const sockets = new Set<TLSSocket>();
  const sessions = new Set<ServerHttp2Session>();
  /** HTTP/1.1 requests in progress per connection (for `closeIdleConnections`). */
  const busy = new Map<Socket, number>();

  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
  });
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // An HTTP/2 connection without traffic is closed like an idle keep-alive connection.
    session.setTimeout(opts.keepAliveTimeoutMs, () => session.close());
  });
  server.on('stream', (stream) => {
    // The whole request (headers arrive at once in HTTP/2) must be in within requestTimeoutMs.
    if (stream.endAfterHeaders) return;
    const timer = setTimeout(() => stream.close(h2constants.NGHTTP2_CANCEL), opts.requestTimeoutMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    stream.once('end', clear);
    stream.once('close', clear);
  });
  server.on('request', (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    if (req.httpVersionMajor === 2) {
      // A response sent before the request body was read in full (e.g. 413): stop receiving it
      // (RST_STREAM NO_ERROR after the complete response, RFC 9113 §8.1).
      const stream = (res as Http2ServerResponse).stream;
      stream.once('finish', () => {
        if (!stream.endAfterHeaders && !req.complete && !stream.closed) stream.close(h2constants.NGHTTP2_NO_ERROR);
      });
      return;
    }
    const socket = req.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const n = (busy.get(socket) ?? 1) - 1;
      if (n > 0) busy.set(socket, n);
      else busy.delete(socket);
    });
  });

  // Node ≥ 20.19 closes idle HTTP/1.1 connections of an HTTP/2 server precisely (by parser state).
  const nativeCloseIdle = (server as { closeIdleConnections?: () => void }).closeIdleConnections?.bind(server);
  Object.assign(server, {
    /** Idle HTTP/1.1 connections are closed; HTTP/2 sessions are told to go away once their streams end. */
    closeIdleConnections(): void {
      if (nativeCloseIdle) nativeCloseIdle();
      else {
        for (const socket of sockets) {
          if (socket.alpnProtocol !== 'h2' && !busy.has(socket)) socket.destroy();
        }
      }
      for (const session of sessions) if (!session.closed) session.close();
    },
    /** Every connection is destroyed, whatever is in flight on it. */
    closeAllConnections(): void {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  });
  return server;
}
