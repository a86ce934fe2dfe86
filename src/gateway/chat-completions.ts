/**
 * POST /v1/chat/completions — the pipeline, top to bottom:
 * authenticate → route → translate (or pass through) → upstream → encode for the client → meter.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { decodeChatRequest } from '../api/openai/decode-request.js';
import { encodeChatResponse } from '../api/openai/encode-response.js';
import { encodeStreamError } from '../api/openai/encode-error.js';
import { refuseUpstreamOverrides } from '../api/openai/upstream-override.js';
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
import { rawJsonOf, rewriteRawJson, type RawJsonObject } from '../server/json-body.js';
import { computeCost } from '../billing/cost.js';
import { admitChat, checkKeyMayCall, estimatePromptTokens, CHARS_PER_TOKEN } from './admission.js';
import { meterRequest, type GatewayContext, type MeterStart, type RequestMeter } from './context.js';
import { parseRequestControls, withoutRequestControls } from '../routing/request-controls.js';
import { AttemptSchedule, type Candidate } from '../routing/router.js';
import type { RateTicket } from '../limits/limiter.js';
import { admitProvider, admitRate, chatTokenEstimate } from './rate-limits.js';
import { decorateCompletion, ChunkDecorator, usageInChunk, withoutNullUsage } from './decorate.js';
import {
  SSEWriter,
  abortOnClientClose,
  clientGone,
  commonHeaders,
  newGenerationId,
  readJson,
  requireEventStream,
  upstreamStarted,
} from './relay.js';

type Body = Record<string, unknown>;

export async function chatCompletions(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const started = performance.now();
  const key = await ctx.authenticate(request.headers.authorization);
  const raw = request.body;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalidRequest('The request body must be a JSON object.');
  }
  refuseUpstreamOverrides(raw as Body);
  // Routing controls (`models`, `provider`) are the gateway's; the upstream never sees them.
  const controls = parseRequestControls(raw as Body, key.routingDefaults);
  const body = withoutRequestControls(raw as Body);
  for (const model of controls.models) checkKeyMayCall(key, ctx.catalog.resolve(model, 'chat'));
  const plan = ctx.router.plan(controls.models, controls.provider, 'chat');
  const stream = body.stream === true;
  // The client's bytes may be forwarded (same dialect) when nothing was taken out of the body.
  const rawBody = body === raw ? request.rawJson : undefined;
  const rate = await admitRate(ctx.limiter, ctx.rateDefaults, key, reply, () => chatTokenEstimate(plan.candidates[0]!, body));
  let admission;
  try {
    admission = await admitChat(ctx, key, plan.candidates, body, request);
  } catch (err) {
    void rate?.finish(0);
    throw err;
  }
  const generationId = newGenerationId();
  const start: MeterStart = {
    generationId,
    key,
    route: plan.candidates[0]!,
    streamed: stream,
    started,
    reqId: request.id,
    admission,
    rateTickets: rate ? [rate] : [],
  };
  const meter = meterRequest(ctx, request, start);
  try {
    await routeAndRelay(ctx, plan.candidates, body, rawBody, stream, generationId, reply, meter, start);
  } catch (err) {
    meter.fail(clientGone(reply) ? 499 : err instanceof GatewayError ? err.status : 500, err);
    throw err;
  }
}

/**
 * Tries the planned endpoints in order, with retries and fallbacks as the schedule allows, until
 * one answers 2xx; then relays its answer. Nothing is retried once a byte went to the client.
 * `x-maxrouter-attempts` and `x-maxrouter-provider` (the last endpoint tried) are set on every
 * answer, errors included.
 */
async function routeAndRelay(
  ctx: GatewayContext,
  candidates: Candidate[],
  body: Body,
  rawBody: RawJsonObject | undefined,
  stream: boolean,
  generationId: string,
  reply: FastifyReply,
  meter: RequestMeter,
  start: MeterStart,
): Promise<void> {
  const schedule = new AttemptSchedule(candidates, { breakers: ctx.router.breakers, policy: ctx.router.retryPolicy });
  let lastError: unknown;
  for (let attempt = schedule.next(); attempt !== undefined; attempt = schedule.next()) {
    const route = attempt.candidate;
    start.route = route;
    reply.header('x-maxrouter-attempts', String(schedule.attempts));
    reply.header('x-maxrouter-provider', route.provider.id);
    if (attempt.delayMs > 0 && !(await sleepUnlessGone(attempt.delayMs, reply))) {
      schedule.abandoned();
      throw clientClosed();
    }
    const sentAt = performance.now();
    let prepared: Prepared | undefined;
    let providerTicket: RateTicket | undefined;
    try {
      providerTicket = await admitProvider(ctx.limiter, start.key, route);
      prepared = await startAttempt(route, body, rawBody, stream, reply);
      // Non-streamed answers are read whole before anything is sent, so a bad body can still fail over.
      const json = stream ? undefined : await readJson(prepared.upstream, route.provider);
      schedule.succeeded(!stream); // a stream's breaker verdict comes when it ends (deliver)
      if (providerTicket) start.rateTickets!.push(providerTicket);
      providerTicket = undefined;
      const ttfbMs = performance.now() - sentAt;
      await deliver(ctx, route, prepared, json, body, stream, generationId, reply, meter, ttfbMs, sentAt);
      return;
    } catch (err) {
      void providerTicket?.finish(0);
      if (prepared?.delivering) throw err; // bytes went to the client: no retry, no fallback
      lastError = err;
      if (clientGone(reply)) {
        schedule.abandoned();
        throw err;
      }
      if (schedule.failed(err) === 'fatal') throw err;
    }
  }
  throw lastError ?? schedule.unavailableError();
}

interface Prepared {
  upstream: UpstreamCall;
  upstreamRequest: UpstreamRequest<string | Buffer>;
  passthrough: boolean;
  includeUsage: boolean;
  /** Set once the answer is being written to the client. */
  delivering: boolean;
}

/** Builds the request for this endpoint, sends it and waits for a 2xx status (else throws the provider's error). */
async function startAttempt(
  route: Route,
  body: Body,
  rawBody: RawJsonObject | undefined,
  stream: boolean,
  reply: FastifyReply,
): Promise<Prepared> {
  const passthrough = route.provider.adapter.buildPassthroughChatRequest !== undefined;
  const { upstreamRequest, includeUsage } = passthrough ? passthroughRequest(route, body, stream, rawBody) : translatedRequest(route, body);
  const upstream = route.provider.client.post(upstreamRequest);
  abortOnClientClose(reply, upstream);
  await upstreamStarted(upstream, route.provider);
  if (stream) requireEventStream(upstream, route.provider);
  return { upstream, upstreamRequest, passthrough, includeUsage, delivering: false };
}

/** Relays a started 2xx answer to the client and meters it; records the endpoint's health. */
async function deliver(
  ctx: GatewayContext,
  route: Route & { key?: string },
  prepared: Prepared,
  readBody: { text: string; json: unknown } | undefined,
  body: Body,
  stream: boolean,
  generationId: string,
  reply: FastifyReply,
  meter: RequestMeter,
  ttfbMs: number,
  sentAt: number,
): Promise<void> {
  const { upstream, upstreamRequest, passthrough, includeUsage } = prepared;
  const headers = commonHeaders(generationId, route.provider, upstreamRequest.warnings);
  prepared.delivering = true;
  const healthKey = (route as { key?: string }).key;
  const recordHealth = (completionTokens: number) => {
    if (healthKey !== undefined) {
      ctx.router.health.record(healthKey, { ttfbMs, durationMs: performance.now() - sentAt, completionTokens });
    }
  };

  if (!stream) {
    const { text, json } = readBody!;
    if (passthrough) {
      // Same dialect: the upstream's bytes go to the client with the generation id, the
      // provider and usage.cost spliced in; usage is tapped.
      const reported = usageFromOpenAI((json as Body | null)?.usage);
      const usage = reported ?? estimateUsage(body, json);
      const cost = computeCost(usage, route.prices);
      // The answer first (its bytes leave now), then the bookkeeping, which no client waits for.
      reply.headers(headers).type('application/json').send(decorateCompletion(text, json, generationId, route.provider.id, cost, usage));
      meter.finish(200, usage, cost, reported === undefined);
      recordHealth(usage.completionTokens);
      return;
    }
    const result = route.provider.adapter.parseChatResponse(json);
    const cost = computeCost(result.usage, route.prices);
    const created = Math.floor(Date.now() / 1000);
    reply
      .headers(headers)
      .type('application/json')
      .send(JSON.stringify(encodeChatResponse(result, generationId, result.model ?? route.upstreamModel, created, route.provider.id, cost)));
    meter.finish(200, result.usage, cost);
    recordHealth(result.usage.completionTokens);
    return;
  }

  // SSEWriter writes the head on the raw response, which headers set on the reply never reach:
  // pass those (x-maxrouter-attempts, x-ratelimit-*) along, as a non-streamed answer sends them.
  const writer = new SSEWriter(reply, { ...replyHeaders(reply), ...headers }, upstream);
  const promptEstimate = () => estimatePromptTokens(body);
  let outcome: StreamOutcome | undefined;
  try {
    if (passthrough) {
      outcome = await relayPassthroughStream(upstream, writer, reply, route, meter, includeUsage, generationId, promptEstimate);
    } else {
      const encoder = new OpenAIStreamEncoder(
        generationId,
        route.upstreamModel,
        Math.floor(Date.now() / 1000),
        includeUsage,
        route.provider.id,
        (usage) => computeCost(usage, route.prices),
      );
      outcome = await relayTranslatedStream(upstream, writer, reply, route, meter, encoder, promptEstimate);
    }
  } finally {
    // The breaker's verdict on a stream, held back when its headers came (`schedule.succeeded(false)`):
    // one that fails after its first byte is not retried, but it counts against the endpoint.
    if (healthKey !== undefined) {
      const breaker = ctx.router.breakers.get(healthKey);
      if (outcome === undefined) breaker.release();
      else if (outcome.failed) breaker.failure();
      else breaker.success();
    }
  }
  if (!outcome.failed) recordHealth(outcome.completionTokens);
}

/** What a relayed stream ended with. */
interface StreamOutcome {
  failed: boolean;
  completionTokens: number;
}

/** The headers set on the reply so far, as strings. */
function replyHeaders(reply: FastifyReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

function clientClosed(): GatewayError {
  return new GatewayError('MR_ERR_INVALID_REQUEST', 'The client closed the request.', { status: 499 });
}

/** Waits `ms`, or less if the client goes away; resolves whether the client is still there. */
function sleepUnlessGone(ms: number, reply: FastifyReply): Promise<boolean> {
  return new Promise((resolve) => {
    const res = reply.raw;
    const done = () => {
      clearTimeout(timer);
      res.off('close', onClose);
      resolve(!clientGone(reply));
    };
    const onClose = () => done();
    const timer = setTimeout(done, ms);
    res.once('close', onClose);
  });
}

/** Usage for a completed response whose provider reported none: an estimate from the texts. */
function estimateUsage(body: Body, json: unknown): IRUsage {
  let chars = 0;
  const choices = (json as Body | null)?.choices;
  if (Array.isArray(choices)) {
    for (const c of choices) {
      const m = (c as Body | null)?.message as Body | undefined;
      if (typeof m?.content === 'string') chars += m.content.length;
      if (m?.tool_calls !== undefined) chars += JSON.stringify(m.tool_calls).length;
    }
  }
  return { ...emptyUsage(), promptTokens: estimatePromptTokens(body), completionTokens: Math.ceil(chars / CHARS_PER_TOKEN) };
}

/**
 * Same dialect: forward the client's body with the model id rewritten and usage requested.
 * `raw` is the layout of the client's bytes when the body reached here unchanged (no routing
 * controls taken out); when those bytes say the same as the parse (`rawJsonOf`), they are forwarded with the model value replaced, and
 * `stream_options` appended when the client sent none, instead of serialising the object again.
 */
function passthroughRequest(
  route: Route,
  body: Body,
  stream: boolean,
  raw: RawJsonObject | undefined,
): { upstreamRequest: UpstreamRequest<string | Buffer>; includeUsage: boolean } {
  let includeUsage = false;
  let bytes: Buffer | undefined;
  let out: Body = body;
  const bytesOf = raw === undefined ? undefined : rawJsonOf(body, raw);
  if (stream) {
    const so = body.stream_options;
    if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) {
      throw invalidRequest("'stream_options' must be an object.", 'stream_options');
    }
    includeUsage = (so as Body | undefined)?.include_usage === true;
    // The client's bytes do when they already ask for usage, or say nothing of stream options.
    if (bytesOf !== undefined && (includeUsage || so === undefined)) {
      bytes = rewriteRawJson(bytesOf, route.upstreamModel, includeUsage ? undefined : STREAM_OPTIONS_MEMBER);
    }
    if (bytes === undefined) out = { ...body, model: route.upstreamModel, stream_options: { ...(so as Body | undefined), include_usage: true } };
  } else {
    if (bytesOf !== undefined) bytes = rewriteRawJson(bytesOf, route.upstreamModel);
    if (bytes === undefined) out = { ...body, model: route.upstreamModel };
  }
  const upstreamRequest = route.provider.adapter.buildPassthroughChatRequest!(route.provider.target, out, bytes);
  return { upstreamRequest, includeUsage };
}

const STREAM_OPTIONS_MEMBER = '"stream_options":{"include_usage":true}';

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
  generationId: string,
  promptEstimate: () => number,
): Promise<StreamOutcome> {
  let usage: IRUsage | undefined;
  let done = false;
  let failed: GatewayError | undefined;
  const chunks = new ChunkDecorator(generationId, route.provider.id);
  const sse = createSSEDecoder({
    onEvent(ev) {
      if (done || failed) return;
      const data = ev.data;
      if (data === '[DONE]') {
        done = true;
        writer.push(DONE_EVENT);
        return;
      }
      // Parsed only when it may carry an error or a usage: OpenAI sends `"usage":null` in every
      // chunk but the last once usage is requested (and the gateway always requests it).
      const usageSaid = usageInChunk(data);
      if (usageSaid === 'value' || data.includes('"error"')) {
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
        if (u && chunk) {
          writer.push(`data: ${chunks.withCost(data, chunk, computeCost(u, route.prices), u)}\n\n`);
          return;
        }
      }
      const decorated = chunks.decorate(usageSaid === 'null' && !includeUsage ? withoutNullUsage(data) : data);
      if (decorated === undefined) {
        failed = new GatewayError('MR_ERR_UPSTREAM_BAD_RESPONSE', `Provider '${route.provider.id}' sent a stream event that is not a JSON object.`);
        writer.push(encodeStreamError(failed));
        return;
      }
      writer.push(`data: ${decorated}\n\n`);
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
  settle(meter, reply, failed, usage, chunks.relayedTextChars(), (relayed) => ({
    ...emptyUsage(),
    promptTokens: promptEstimate(),
    completionTokens: Math.ceil(relayed / CHARS_PER_TOKEN),
  }));
  return { failed: failed !== undefined, completionTokens: usage?.completionTokens ?? 0 };
}

/** Relays a stream of another dialect: upstream events → IR parts → OpenAI chunks. */
async function relayTranslatedStream(
  upstream: UpstreamCall,
  writer: SSEWriter,
  reply: FastifyReply,
  route: Route,
  meter: RequestMeter,
  encoder: OpenAIStreamEncoder,
  promptEstimate: () => number,
): Promise<StreamOutcome> {
  const decoder = route.provider.adapter.createStreamDecoder();
  let usage: IRUsage | undefined;
  let failed: GatewayError | undefined;
  let relayedChars = 0;
  const emit = (parts: IRStreamPart[]) => {
    for (const part of parts) {
      if (failed) return;
      if (part.type === 'usage') usage = part.usage;
      else if (part.type === 'error') failed = part.error;
      else if (part.type === 'text-delta' || part.type === 'reasoning-delta' || part.type === 'refusal-delta') relayedChars += part.text.length;
      else if (part.type === 'tool-call-delta') relayedChars += part.argumentsDelta.length;
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
  settle(meter, reply, failed, usage, relayedChars, (relayed) => ({
    ...emptyUsage(),
    promptTokens: promptEstimate(),
    completionTokens: Math.ceil(relayed / CHARS_PER_TOKEN),
  }));
  return { failed: failed !== undefined, completionTokens: usage?.completionTokens ?? 0 };
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

/**
 * Records a stream's outcome. Usage the provider reported is billed as reported; a stream that
 * ended without it (client gone, upstream failure, or a provider that never reports usage) is
 * billed on an estimate, marked as such in the usage row — except an upstream failure before
 * any text was relayed, which costs nothing.
 */
function settle(
  meter: RequestMeter,
  reply: FastifyReply,
  failed: GatewayError | undefined,
  usage: IRUsage | undefined,
  relayedChars: number,
  estimate: (relayedChars: number) => IRUsage,
): void {
  const estimated = usage === undefined && !(failed && relayedChars === 0);
  const billed = usage ?? (estimated ? estimate(relayedChars) : emptyUsage());
  if (failed) meter.fail(failed.status, failed, billed, estimated);
  else if (reply.raw.destroyed && !reply.raw.writableFinished) meter.fail(499, undefined, billed, estimated);
  else meter.finish(200, billed, undefined, estimated);
}
