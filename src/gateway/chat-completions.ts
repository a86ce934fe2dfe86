/**
 * POST /v1/chat/completions — the pipeline, top to bottom:
 * authenticate → route → translate (or pass through) → upstream → encode for the client → meter.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { decodeChatRequest } from '../api/openai/decode-request.js';
import { encodeChatResponse } from '../api/openai/encode-response.js';
import { encodeStreamError } from '../api/openai/encode-error.js';
import { DONE_EVENT, OpenAIStreamEncoder } from '../api/openai/encode-stream.js';
import { GatewayError, invalidRequest } from '../ir/errors.js';
import type { IRWarning } from '../ir/request.js';
import type { IRStreamPart } from '../ir/stream-part.js';
import { emptyUsage, type IRUsage } from '../ir/usage.js';
import { usageFromOpenAI } from '../providers/openai/usage.js';
import type { UpstreamRequest } from '../providers/provider.js';
import type { Route } from '../routing/catalog.js';
import type { UpstreamCall } from '../routing/upstream-client.js';
import { createSSEDecoder } from '../sse/sse-parser.js';
import { meterRequest, type GatewayContext, type RequestMeter } from './context.js';
import {
  SSEWriter,
  abortOnClientClose,
  clientGone,
  commonHeaders,
  newGenerationId,
  readJson,
  upstreamStarted,
} from './relay.js';

type Body = Record<string, unknown>;

export async function chatCompletions(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const started = performance.now();
  const key = await ctx.authenticate(request.headers.authorization);
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidRequest('The request body must be a JSON object.');
  }
  const route = ctx.catalog.resolve((body as Body).model, 'chat');
  const stream = (body as Body).stream === true;
  const generationId = newGenerationId();
  const meter = meterRequest(ctx, request, { generationId, key, route, streamed: stream, started, reqId: request.id });
  try {
    await relay(route, body as Body, stream, generationId, reply, meter);
  } catch (err) {
    meter.fail(clientGone(reply) ? 499 : err instanceof GatewayError ? err.status : 500, err);
    throw err;
  }
}

async function relay(route: Route, body: Body, stream: boolean, generationId: string, reply: FastifyReply, meter: RequestMeter): Promise<void> {
  const passthrough = route.provider.adapter.buildPassthroughChatRequest !== undefined;
  const { upstreamRequest, includeUsage } = passthrough ? passthroughRequest(route, body, stream) : translatedRequest(route, body);

  const upstream = route.provider.client.post(upstreamRequest);
  abortOnClientClose(reply, upstream);
  await upstreamStarted(upstream, route.provider);
  const headers = commonHeaders(generationId, route.provider, upstreamRequest.warnings);

  if (!stream) {
    const { text, json } = await readJson(upstream, route.provider);
    if (passthrough) {
      // Same dialect: the upstream's bytes go to the client untouched; usage is tapped.
      meter.finish(200, usageFromOpenAI((json as Body | null)?.usage) ?? emptyUsage());
      reply.headers(headers).type('application/json').send(text);
      return;
    }
    const result = route.provider.adapter.parseChatResponse(json);
    meter.finish(200, result.usage);
    const created = Math.floor(Date.now() / 1000);
    reply
      .headers(headers)
      .type('application/json')
      .send(JSON.stringify(encodeChatResponse(result, `chatcmpl-${generationId.slice(4)}`, result.model ?? route.upstreamModel, created)));
    return;
  }

  const writer = new SSEWriter(reply, headers, upstream);
  if (passthrough) {
    await relayPassthroughStream(upstream, writer, reply, route, meter, includeUsage);
  } else {
    const encoder = new OpenAIStreamEncoder(
      `chatcmpl-${generationId.slice(4)}`,
      route.upstreamModel,
      Math.floor(Date.now() / 1000),
      includeUsage,
    );
    await relayTranslatedStream(upstream, writer, reply, route, meter, encoder);
  }
}

/** Same dialect: forward the client's body with the model id rewritten and usage requested. */
function passthroughRequest(route: Route, body: Body, stream: boolean): { upstreamRequest: UpstreamRequest; includeUsage: boolean } {
  const out: Body = { ...body, model: route.upstreamModel };
  let includeUsage = false;
  if (stream) {
    const so = body.stream_options;
    if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) {
      throw invalidRequest("'stream_options' must be an object.", 'stream_options');
    }
    includeUsage = (so as Body | undefined)?.include_usage === true;
    out.stream_options = { ...(so as Body | undefined), include_usage: true };
  }
  const upstreamRequest = route.provider.adapter.buildPassthroughChatRequest!(route.provider.target, out);
  return { upstreamRequest, includeUsage };
}

/** Another dialect: decode to IR, let the provider adapter build its request. */
function translatedRequest(route: Route, body: Body): { upstreamRequest: UpstreamRequest; includeUsage: boolean } {
  const decoded = decodeChatRequest(body, route.upstreamModel, route.provider.adapter.type);
  const ctx = route.model.maxOutputTokens !== undefined ? { maxOutputTokens: route.model.maxOutputTokens } : {};
  const upstreamRequest = route.provider.adapter.buildChatRequest(route.provider.target, decoded.request, ctx);
  const warnings: IRWarning[] = [...decoded.warnings, ...upstreamRequest.warnings];
  return { upstreamRequest: { ...upstreamRequest, warnings }, includeUsage: decoded.includeUsage };
}

/**
 * Relays an OpenAI-style stream as is: each event is parsed once, its usage tapped, and
 * re-emitted. The usage-only chunk that the gateway asked for is dropped when the client did
 * not ask for it. An upstream that ends without `[DONE]` gets an error event, not a fake one.
 */
async function relayPassthroughStream(
  upstream: UpstreamCall,
  writer: SSEWriter,
  reply: FastifyReply,
  route: Route,
  meter: RequestMeter,
  includeUsage: boolean,
): Promise<void> {
  let usage: IRUsage | undefined;
  let done = false;
  let failed: GatewayError | undefined;
  const sse = createSSEDecoder({
    onEvent(ev) {
      if (done || failed) return;
      const data = ev.data;
      if (data === '[DONE]') {
        done = true;
        writer.push(DONE_EVENT);
        return;
      }
      if (data.includes('"usage"') || data.includes('"error"')) {
        let chunk: Body | undefined;
        try {
          chunk = JSON.parse(data) as Body;
        } catch {
          chunk = undefined;
        }
        if (chunk?.error) {
          failed = route.provider.adapter.parseError(500, data, {});
          writer.push(encodeStreamError(failed));
          return;
        }
        const u = usageFromOpenAI(chunk?.usage);
        if (u) usage = u;
        if (!includeUsage && Array.isArray(chunk?.choices) && chunk.choices.length === 0) return;
      }
      writer.push(`data: ${data}\n\n`);
    },
    onError(message) {
      failed = new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${route.provider.id}': ${message}.`);
      writer.push(encodeStreamError(failed));
    },
  });
  await pump(upstream, writer, reply, sse, () => (failed ? 'failed' : done ? 'done' : false), {
    onEnd() {
      if (!done && !failed) {
        failed = new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${route.provider.id}' ended the stream early.`);
        writer.push(encodeStreamError(failed));
      }
    },
    onTransportError(err) {
      failed = err;
      writer.push(encodeStreamError(err));
    },
  });
  settle(meter, reply, failed, usage);
}

/** Relays a stream of another dialect: upstream events → IR parts → OpenAI chunks. */
async function relayTranslatedStream(
  upstream: UpstreamCall,
  writer: SSEWriter,
  reply: FastifyReply,
  route: Route,
  meter: RequestMeter,
  encoder: OpenAIStreamEncoder,
): Promise<void> {
  const decoder = route.provider.adapter.createStreamDecoder();
  let usage: IRUsage | undefined;
  let failed: GatewayError | undefined;
  const emit = (parts: IRStreamPart[]) => {
    for (const part of parts) {
      if (failed) return;
      if (part.type === 'usage') usage = part.usage;
      if (part.type === 'error') failed = part.error;
      writer.push(encoder.encode(part));
    }
  };
  const sse = createSSEDecoder({
    onEvent: (ev) => emit(decoder.push(ev)),
    onError(message) {
      emit([{ type: 'error', error: new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${route.provider.id}': ${message}.`) }]);
    },
  });
  await pump(upstream, writer, reply, sse, () => (failed ? 'failed' : false), {
    onEnd() {
      emit(decoder.end());
      if (!failed) writer.push(encoder.end());
    },
    onTransportError(err) {
      emit([{ type: 'error', error: err }]);
    },
  });
  settle(meter, reply, failed, usage);
}

/**
 * Feeds the upstream body into the SSE decoder and flushes to the client after each chunk.
 * Resolves when the upstream ended, failed, or the client went away (the call is then aborted).
 * Once `stop()` says the stream is over, further bytes are ignored; the upstream connection is
 * cut only on failure, so a finished stream keeps its keep-alive connection.
 */
function pump(
  upstream: UpstreamCall,
  writer: SSEWriter,
  reply: FastifyReply,
  sse: ReturnType<typeof createSSEDecoder>,
  stop: () => 'done' | 'failed' | false,
  hooks: { onEnd(): void; onTransportError(err: GatewayError): void },
): Promise<void> {
  writer.start();
  return new Promise<void>((resolve) => {
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      reply.raw.off('close', onClose);
      writer.end();
      resolve();
    };
    const onClose = () => {
      if (reply.raw.writableFinished) return;
      upstream.abort();
      finish();
    };
    reply.raw.once('close', onClose);
    upstream.consume({
      data(chunk) {
        if (settled || stop()) return;
        sse.feed(chunk);
        writer.flush();
        if (stop() === 'failed') {
          upstream.abort();
          finish();
        }
      },
      end() {
        if (!settled && !stop()) {
          sse.end();
          hooks.onEnd();
        }
        finish();
      },
      error(err) {
        if (!settled && !stop() && !clientGone(reply)) hooks.onTransportError(err);
        finish();
      },
    });
  });
}

function settle(meter: RequestMeter, reply: FastifyReply, failed: GatewayError | undefined, usage: IRUsage | undefined): void {
  if (failed) meter.fail(failed.status, failed, usage);
  else if (reply.raw.destroyed && !reply.raw.writableFinished) meter.fail(499, undefined, usage);
  else meter.finish(200, usage ?? emptyUsage());
}
