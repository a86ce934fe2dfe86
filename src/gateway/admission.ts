/**
 * What a key may do before its request goes upstream: the key kind, the allowed-models list, and
 * spending control (credits and key spend limits) with the request's worst-case cost.
 */
import type { FastifyRequest } from 'fastify';
import { Accounting, type Admission } from '../billing/accounting.js';
import { worstCaseCost } from '../billing/cost.js';
import { GatewayError } from '../ir/errors.js';
import type { Route } from '../routing/catalog.js';
import type { AuthedKey, GatewayContext } from './context.js';

type Body = Record<string, unknown>;

/** Tokens assumed for one image (or other non-text part) when bounding a prompt. */
export const TOKENS_PER_MEDIA_PART = 2_000;
/** Output bound when neither the request nor the catalog names one. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 16_384;

/** 403 for a management key or a model outside the key's allowed list. */
export function checkKeyMayCall(key: AuthedKey, route: Route): void {
  if (key.kind !== 'inference') {
    throw new GatewayError('MR_ERR_FORBIDDEN', 'Management keys cannot call models; use an API key of this account.');
  }
  if (key.allowedModels !== null && !key.allowedModels.has(route.modelId)) {
    throw new GatewayError('MR_ERR_FORBIDDEN', `This API key is not allowed to use the model '${route.modelId}'.`, {
      param: 'model',
    });
  }
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

/** Image, audio and file parts in the messages (each may cost far more tokens than its bytes). */
function mediaParts(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let n = 0;
  for (const m of messages) {
    const content = (m as Body | null)?.content;
    if (!Array.isArray(content)) continue;
    for (const part of content) {
      const t = (part as Body | null)?.type;
      if (t !== undefined && t !== 'text') n++;
    }
  }
  return n;
}

/** The size of the request body in bytes, from Content-Length or, without it, re-measured. */
export function bodyBytes(request: FastifyRequest): number {
  const cl = Number(request.headers['content-length']);
  return Number.isFinite(cl) && cl > 0 ? cl : Buffer.byteLength(JSON.stringify(request.body ?? null));
}

/**
 * The worst case of a chat request, in tokens: every body byte a prompt token (no tokenizer
 * makes a text token shorter than one byte) plus `TOKENS_PER_MEDIA_PART` per image, audio or
 * file part, capped at the context length; and the output limit the request sets, else the
 * catalog's maximum output, else the context length, else `DEFAULT_MAX_OUTPUT_TOKENS`.
 */
export function chatBounds(route: Route, body: Body, bytes: number): { prompt: number; output: number; outputFromRequest: boolean } {
  const ctxLen = route.model.contextLength;
  let prompt = bytes + mediaParts(body.messages) * TOKENS_PER_MEDIA_PART;
  if (ctxLen !== undefined) prompt = Math.min(prompt, ctxLen);
  const asked = positiveInt(body.max_completion_tokens) ?? positiveInt(body.max_tokens);
  const output = asked ?? route.model.maxOutputTokens ?? ctxLen ?? DEFAULT_MAX_OUTPUT_TOKENS;
  return { prompt, output, outputFromRequest: asked !== undefined };
}

/**
 * Admits a chat request under the key's spending controls; undefined when none apply. With
 * fallbacks planned, the worst case is the dearest of the endpoints that may serve it.
 */
export async function admitChat(
  ctx: GatewayContext,
  key: AuthedKey,
  routes: readonly Route[],
  body: Body,
  request: FastifyRequest,
): Promise<Admission | undefined> {
  if (!Accounting.applies(key)) return undefined;
  const bytes = bodyBytes(request);
  let b = chatBounds(routes[0]!, body, bytes);
  let worst = worstCaseCost(b.prompt, b.output, routes[0]!.prices);
  for (let i = 1; i < routes.length; i++) {
    const bi = chatBounds(routes[i]!, body, bytes);
    const wi = worstCaseCost(bi.prompt, bi.output, routes[i]!.prices);
    if (wi > worst) {
      worst = wi;
      b = bi;
    }
  }
  const bounds = b;
  return ctx.accounting.admit(key, worst, () =>
    `up to ${bounds.prompt} prompt tokens and ${bounds.output} output tokens${bounds.outputFromRequest ? '' : " (the model's maximum; set max_tokens to ask for less)"}`,
  );
}

/** Admits an embeddings request: every body byte a token, no output. */
export async function admitEmbeddings(
  ctx: GatewayContext,
  key: AuthedKey,
  route: Route,
  request: FastifyRequest,
): Promise<Admission | undefined> {
  if (!Accounting.applies(key)) return undefined;
  const prompt = bodyBytes(request);
  const worst = worstCaseCost(prompt, 0, route.prices);
  return ctx.accounting.admit(key, worst, () => `up to ${prompt} input tokens`);
}

/** Characters per token in estimates (the usual rule of thumb for English text). */
export const CHARS_PER_TOKEN = 4;
/** Tokens an estimate counts for one image, audio or file part. */
export const ESTIMATED_TOKENS_PER_MEDIA_PART = 1_000;

/**
 * An estimate of a chat request's prompt tokens, for a stream that ended before the provider
 * reported usage: the characters of every message text, tool call and tool definition at
 * `CHARS_PER_TOKEN`, plus `ESTIMATED_TOKENS_PER_MEDIA_PART` per image, audio or file part.
 */
export function estimatePromptTokens(body: Body): number {
  let chars = 0;
  let media = 0;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const m of messages) {
    const msg = (m ?? {}) as Body;
    const content = msg.content;
    if (typeof content === 'string') chars += content.length;
    else if (Array.isArray(content)) {
      for (const part of content) {
        const p = (part ?? {}) as Body;
        if (typeof p.text === 'string') chars += p.text.length;
        else if (p.type !== undefined && p.type !== 'text') media++;
      }
    }
    if (msg.tool_calls !== undefined) chars += JSON.stringify(msg.tool_calls).length;
  }
  if (body.tools !== undefined) chars += JSON.stringify(body.tools).length;
  return Math.ceil(chars / CHARS_PER_TOKEN) + media * ESTIMATED_TOKENS_PER_MEDIA_PART;
}
