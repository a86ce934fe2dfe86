/**
 * The Fastify app factory (no listen): routes, body limits, the error handler that renders
 * every failure in OpenAI's error shape, and no request logging beyond the allowlisted access log.
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { encodeError } from '../api/openai/encode-error.js';
import { chatCompletions } from '../gateway/chat-completions.js';
import type { GatewayContext } from '../gateway/context.js';
import { embeddings } from '../gateway/embeddings.js';
import { listModels } from '../gateway/models.js';
import { GatewayError } from '../ir/errors.js';
import type { AccessLog } from './access-log.js';
import { registerAccountApi, type AccountApiDeps } from './account-api.js';
import { registerAdminApi, type AdminApiDeps } from './admin-api.js';

export interface AppOptions {
  gateway: GatewayContext;
  accessLog: AccessLog;
  logger: Logger;
  /** Maximum request body in bytes. */
  bodyLimit: number;
  /** Readiness check (e.g. a database ping); `/healthz` answers 503 when it throws. */
  health?: () => Promise<void>;
  /** The account API (`/api/v1/…`); absent: not served. */
  accountApi?: AccountApiDeps;
  /** The admin API (`/admin/v1/…`); absent (no `admin.key`): not served, 404. */
  adminApi?: AdminApiDeps;
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
  const app = Fastify({
    logger: false,
    bodyLimit: opts.bodyLimit,
    return503OnClosing: true,
    keepAliveTimeout: 72_000,
    requestTimeout: 0,
    connectionTimeout: 0,
    forceCloseConnections: 'idle',
  });

  app.decorateRequest('metered', false);

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
