/**
 * The Fastify app factory (no listen): the HTTP server (plain, or HTTPS from tls.ts) with its
 * timeouts, routes, body limits and the JSON body parser with its shape limits, the error
 * handler that renders every failure in OpenAI's error shape, and no request logging beyond the
 * allowlisted access log.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerFactory } from 'fastify';
import type { Logger } from 'pino';
import { HTTP_DEFAULTS, type HttpConfig } from '../config/schema.js';
import { encodeError } from '../api/openai/encode-error.js';
import { chatCompletions } from '../gateway/chat-completions.js';
import type { GatewayContext } from '../gateway/context.js';
import { embeddings } from '../gateway/embeddings.js';
import { listModels } from '../gateway/models.js';
import { GatewayError } from '../ir/errors.js';
import type { AccessLog } from './access-log.js';
import { registerAccountApi, type AccountApiDeps } from './account-api.js';
import { registerAdminApi, type AdminApiDeps } from './admin-api.js';
import { parseJsonBody, type JsonBodyLimits } from './json-body.js';
import { createTlsServer, type TlsMaterial } from './tls.js';

export interface AppOptions {
  gateway: GatewayContext;
  accessLog: AccessLog;
  logger: Logger;
  /** Maximum request body in bytes. */
  bodyLimit: number;
  /** `GET /metrics` text (Prometheus format), when given. */
  metrics?: () => string;
  /** Readiness check (e.g. a database ping); `/healthz` answers 503 when it throws. */
  health?: () => Promise<void>;
  /** The account API (`/api/v1/…`); absent: not served. */
  accountApi?: AccountApiDeps;
  /** The admin API (`/admin/v1/…`); absent (no `admin.key`): not served, 404. */
  adminApi?: AdminApiDeps;
  /** The config's `http` section (proxies, timeouts, JSON limits); absent: its defaults. */
  http?: HttpConfig;
  /** Serve HTTPS (TLS 1.3, HTTP/2 and HTTP/1.1) with this certificate; absent: plain HTTP/1.1. */
  tls?: TlsMaterial;
}

/**
 * How often Node checks connections against the header and request timeouts: a quarter of the
 * shorter one, so a timeout fires at most 25 % late (Node's own default checks every 30 s).
 */
function checkingIntervalMs(http: HttpConfig): number {
  return Math.max(50, Math.min(5_000, Math.floor(Math.min(http.headersTimeoutMs, http.requestTimeoutMs) / 4)));
}

/** The plain HTTP/1.1 server, with the slow-client timeouts. */
function createPlainServer(http: HttpConfig, handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const server = createServer(
    {
      headersTimeout: http.headersTimeoutMs,
      requestTimeout: http.requestTimeoutMs,
      keepAliveTimeout: http.keepAliveTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(http),
    },
    handler,
  );
  // Headers and request timeouts cover receiving the request only: a long response (a stream)
  // is not limited by them, and no socket inactivity timeout applies either.
  server.setTimeout(0);
  return server;
}

/**
 * Errors Node reports before there is a request (malformed HTTP, headers too slow or too
 * large), answered on the socket in OpenAI's error shape.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let message = 'The request is not valid HTTP.';
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    message = 'The request was not received in time.';
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    message = 'The request headers are too large.';
  }
  // A response already under way on this connection cannot be followed by another.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify(encodeError(new GatewayError('MR_ERR_INVALID_REQUEST', message, { status })));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Fastify's own errors (body parsing, limits, routing) → the catalogue. */
function fromFastifyError(err: FastifyError): GatewayError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('MR_ERR_PAYLOAD_TOO_LARGE', 'The request body is larger than this gateway accepts.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('MR_ERR_INVALID_REQUEST', "The request body must be JSON with 'Content-Type: application/json'.");
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('MR_ERR_INVALID_JSON', 'The request body is empty; a JSON object is required.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('MR_ERR_INVALID_REQUEST', 'The Content-Length header does not match the body.');
    default:
      break;
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new GatewayError('MR_ERR_INVALID_JSON', 'The request body is not valid JSON.');
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new GatewayError('MR_ERR_INVALID_REQUEST', 'The request could not be read.', { status: err.statusCode });
  }
  return new GatewayError('MR_ERR_INTERNAL', 'The gateway failed to process the request.');
}

export function buildApp(opts: AppOptions): FastifyInstance {
  const http: HttpConfig = opts.http ?? HTTP_DEFAULTS;
  const tls = opts.tls;
  // The server is built here rather than by Fastify: Fastify leaves an HTTP/2 server's timeouts
  // unset and refuses `forceCloseConnections: 'idle'` on it. Under TLS the raw request and reply
  // are HTTP/2 compatibility objects, which share the interface the gateway uses.
  const serverFactory = ((handler: Parameters<typeof createPlainServer>[1]) =>
    tls
      ? createTlsServer(
          tls,
          { ...http, connectionsCheckingIntervalMs: checkingIntervalMs(http) },
          handler as Parameters<typeof createTlsServer>[2],
        )
      : createPlainServer(http, handler)) as unknown as FastifyServerFactory;
  const app = Fastify({
    logger: false,
    bodyLimit: opts.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory,
    trustProxy: http.trustProxy,
    clientErrorHandler: onClientError,
  });

  const jsonLimits: JsonBodyLimits = { maxDepth: http.maxJsonDepth, maxItems: http.maxJsonItems };
  // JSON only: Fastify's own text/plain parser would hand a JSON text sent as text/plain to the
  // handlers as a string, refused as "not an object" instead of for its content type.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      const parsed = parseJsonBody(body as Buffer, jsonLimits);
      request.rawJson = parsed.raw;
      done(null, parsed.value);
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.decorateRequest('metered', false);
  app.decorateRequest('rawJson', undefined);

  app.setErrorHandler((error: unknown, request, reply) => {
    const err = error instanceof GatewayError ? error : fromFastifyError(error as FastifyError);
    // Requests refused before metering (bad key, bad input, unknown model) still get an access-log line.
    if (!request.metered) opts.accessLog.write({ reqId: request.id, status: err.status, errorCode: err.code });
    if (err.code === 'MR_ERR_INTERNAL') {
      // Unknown failures are logged by name and code only: messages of unknown origin may hold content.
      const e = error as { name?: string; code?: string };
      opts.logger.error({ reqId: request.id, errorName: e?.name, errorCode: e?.code }, 'internal error');
    }
    if (reply.sent || reply.raw.headersSent) return;
    if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
    reply.status(err.status).type('application/json').send(JSON.stringify(encodeError(err)));
  });

  app.setNotFoundHandler((request, reply) => {
    const err = new GatewayError('MR_ERR_NOT_FOUND', `No route for ${request.method} ${request.url.split('?')[0]}.`);
    reply.status(404).type('application/json').send(JSON.stringify(encodeError(err)));
  });

  const ctx = opts.gateway;
  // `/api/v1/…` as well, for clients configured with OpenRouter's base-URL form.
  for (const base of ['/v1', '/api/v1']) {
    app.post(`${base}/chat/completions`, (request, reply) => chatCompletions(ctx, request, reply));
    app.post(`${base}/embeddings`, (request, reply) => embeddings(ctx, request, reply));
    app.get(`${base}/models`, async (request, reply) => {
      await ctx.authenticate(request.headers.authorization);
      reply.type('application/json').send(JSON.stringify(listModels(ctx.catalog, 1_700_000_000)));
    });
  }
  if (opts.accountApi) registerAccountApi(app, ctx, opts.accountApi);
  if (opts.adminApi) registerAdminApi(app, ctx, opts.adminApi);
  if (opts.metrics) {
    const metrics = opts.metrics;
    app.get('/metrics', async (_request, reply) => {
      reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics());
    });
  }
  app.get('/healthz', async (_request, reply) => {
    try {
      await opts.health?.();
      reply.send({ status: 'ok' });
    } catch {
      reply.status(503).send({ status: 'unavailable' });
    }
  });
  return app;
}
