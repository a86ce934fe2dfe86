/**
 * POST /v1/embeddings — authenticate → route → pass through (OpenAI-style upstreams) or
 * translate (Gemini) → OpenAI's embeddings list → meter.
 * @see https://platform.openai.com/docs/api-reference/embeddings/create
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { refuseUpstreamOverrides } from '../api/openai/upstream-override.js';
import { GatewayError, invalidRequest } from '../ir/errors.js';
import type { IREmbeddingsRequest } from '../ir/embeddings.js';
import { emptyUsage, tokenCount } from '../ir/usage.js';
import type { UpstreamRequest } from '../providers/provider.js';
import { admitEmbeddings, checkKeyMayCall } from './admission.js';
import { admitProvider, admitRate, embeddingsTokenEstimate } from './rate-limits.js';
import { meterRequest, type GatewayContext } from './context.js';
import { abortOnClientClose, clientGone, commonHeaders, newGenerationId, readJson, upstreamStarted } from './relay.js';

type Body = Record<string, unknown>;

function inputs(v: unknown): { strings?: string[]; tokens: boolean } {
  if (typeof v === 'string') return { strings: [v], tokens: false };
  if (Array.isArray(v) && v.length > 0) {
    if (v.every((s) => typeof s === 'string')) return { strings: v as string[], tokens: false };
    const isTokens = (a: unknown) => Array.isArray(a) && a.length > 0 && a.every((t) => Number.isInteger(t) && (t as number) >= 0);
    if (v.every((t) => Number.isInteger(t)) || v.every(isTokens)) return { tokens: true };
  }
  throw invalidRequest("'input' must be a non-empty string, array of strings, or array of token arrays.", 'input');
}

/** Approximate tokens (4 characters a token) where an upstream does not report usage. */
function estimateTokens(strings: string[]): number {
  let chars = 0;
  for (const s of strings) chars += s.length;
  return Math.ceil(chars / 4);
}

function float32Base64(v: number[]): string {
  const buf = Buffer.allocUnsafe(v.length * 4);
  v.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}

export async function embeddings(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const started = performance.now();
  const key = await ctx.authenticate(request.headers.authorization);
  const body = request.body as Body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidRequest('The request body must be a JSON object.');
  }
  refuseUpstreamOverrides(body);
  const route = ctx.catalog.resolve(body.model, 'embedding');
  const adapter = route.provider.adapter;
  const { strings, tokens } = inputs(body.input);
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw invalidRequest("'encoding_format' must be float or base64.", 'encoding_format');
  }
  const dims = body.dimensions;
  if (dims !== undefined && dims !== null && (!Number.isInteger(dims) || (dims as number) < 1)) {
    throw invalidRequest("'dimensions' must be a positive integer.", 'dimensions');
  }
  checkKeyMayCall(key, route);
  const rate = await admitRate(ctx.limiter, ctx.rateDefaults, key, reply, () => embeddingsTokenEstimate(route, body));
  let admission;
  let providerTicket;
  try {
    providerTicket = await admitProvider(ctx.limiter, key, route);
    admission = await admitEmbeddings(ctx, key, route, request);
  } catch (err) {
    void rate?.finish(0);
    void providerTicket?.finish(0);
    throw err;
  }
  const generationId = newGenerationId();
  const rateTickets = [rate, providerTicket].filter((t) => t !== undefined);
  const meter = meterRequest(ctx, request, { generationId, key, route, streamed: false, started, reqId: request.id, admission, rateTickets });

  let up: UpstreamRequest;
  if (adapter.buildPassthroughEmbeddingsRequest) {
    up = adapter.buildPassthroughEmbeddingsRequest(route.provider.target, { ...body, model: route.upstreamModel });
  } else if (adapter.buildEmbeddingsRequest && adapter.parseEmbeddingsResponse) {
    if (tokens || !strings) {
      throw invalidRequest(`Token-array inputs are not supported by provider type '${adapter.type}'; send strings.`, 'input');
    }
    const ir: IREmbeddingsRequest = { model: route.upstreamModel, input: strings, encodingFormat: format };
    if (typeof dims === 'number') ir.dimensions = dims;
    if (typeof body.user === 'string') ir.user = body.user;
    up = adapter.buildEmbeddingsRequest(route.provider.target, ir);
  } else {
    throw new GatewayError('MR_ERR_UNSUPPORTED_ENDPOINT', `Provider type '${adapter.type}' has no embeddings API.`, { param: 'model' });
  }

  try {
    const upstream = route.provider.client.post(up);
    abortOnClientClose(reply, upstream);
    await upstreamStarted(upstream, route.provider);
    const { text, json } = await readJson(upstream, route.provider);
    const headers = commonHeaders(generationId, route.provider, up.warnings);
    if (adapter.buildPassthroughEmbeddingsRequest) {
      const reported = tokenCount((json as any)?.usage?.prompt_tokens);
      const promptTokens = reported || (strings ? estimateTokens(strings) : 0);
      meter.finish(200, { ...emptyUsage(), promptTokens }, undefined, reported === 0 && promptTokens > 0);
      reply.headers(headers).type('application/json').send(text);
      return;
    }
    const result = adapter.parseEmbeddingsResponse!(json);
    const promptTokens = result.promptTokens || estimateTokens(strings!);
    meter.finish(200, { ...emptyUsage(), promptTokens }, undefined, result.promptTokens === 0);
    reply
      .headers(headers)
      .type('application/json')
      .send(
        JSON.stringify({
          object: 'list',
          data: result.embeddings.map((e, index) => ({
            object: 'embedding',
            index,
            embedding: format === 'base64' ? float32Base64(e) : e,
          })),
          model: result.model ?? route.upstreamModel,
          usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
        }),
      );
  } catch (err) {
    meter.fail(clientGone(reply) ? 499 : err instanceof GatewayError ? err.status : 500, err);
    throw err;
  }
}
