/**
 * Rate limits on the request path: the key's and the account's (requests, tokens and
 * concurrency per minute, admitted once per request) and the provider's (requests and
 * concurrency, admitted per upstream attempt). Nothing is asked of the limiter when no limit
 * applies, so a deployment without limits pays nothing for them.
 */
import type { FastifyReply } from 'fastify';
import type { RateLimiter, RateTicket, Limits } from '../limits/limiter.js';
import { RateLimitedError } from '../limits/errors.js';
import { estimatePromptTokens, requestedOutputTokens, tokenizerForProvider } from '../limits/tokens.js';
import type { Route } from '../routing/catalog.js';
import type { AuthedKey } from './context.js';
import { DEFAULT_MAX_OUTPUT_TOKENS } from './admission.js';

/** The configured defaults (`limits.key`, `limits.account`). */
export interface RateLimitDefaults {
  key: Limits;
  account: Limits;
}

function has(l: Limits): boolean {
  return l.rpm !== undefined || l.tpm !== undefined || l.concurrency !== undefined;
}

/** The key's limits: its own overrides, else the configured defaults. */
export function keyLimits(key: AuthedKey, defaults: Limits): Limits {
  const own = key.rateLimits;
  const out: Limits = {};
  const rpm = own.rpm ?? defaults.rpm;
  const tpm = own.tpm ?? defaults.tpm;
  const concurrency = own.concurrency ?? defaults.concurrency;
  if (rpm !== undefined) out.rpm = rpm;
  if (tpm !== undefined) out.tpm = tpm;
  if (concurrency !== undefined) out.concurrency = concurrency;
  return out;
}

/**
 * Admits a request under its key's and account's limits, or throws a 429 (with `retry-after`
 * and the `x-ratelimit-*` headers set on the reply) or a 503 when the limiter's store is down and
 * fails closed. Undefined when no limit applies. `tokens` gives the request's token estimate
 * (called only when a tokens-per-minute limit exists).
 */
export async function admitRate(
  limiter: RateLimiter,
  defaults: RateLimitDefaults,
  key: AuthedKey,
  reply: FastifyReply,
  tokens: () => Promise<number>,
): Promise<RateTicket | undefined> {
  const kl = keyLimits(key, defaults.key);
  const al = defaults.account;
  if (!has(kl) && !has(al)) return undefined;
  const estimatedTokens = kl.tpm !== undefined || al.tpm !== undefined ? await tokens() : 0;
  try {
    const ticket = await limiter.admit({
      keyId: key.keyId,
      accountId: key.accountId,
      providerId: '',
      estimatedTokens,
      limits: { key: kl, account: al, provider: {} },
    });
    reply.headers(ticket.headers());
    return ticket;
  } catch (err) {
    if (err instanceof RateLimitedError) reply.headers(err.headers);
    throw err;
  }
}

/** Admits one upstream attempt under its provider's caps (`providers[].limits`); undefined without caps. */
export async function admitProvider(limiter: RateLimiter, key: AuthedKey, route: Route): Promise<RateTicket | undefined> {
  const caps = route.provider.config.limits;
  if (caps === undefined || (caps.rpm === undefined && caps.concurrency === undefined)) return undefined;
  return limiter.admit({
    keyId: key.keyId,
    accountId: key.accountId,
    providerId: route.provider.id,
    estimatedTokens: 0,
    limits: { key: {}, account: {}, provider: caps },
  });
}

/** A chat request's token estimate: its prompt (OpenAI's tokenizer for OpenAI models) plus the output it asks for. */
export async function chatTokenEstimate(route: Route, body: Record<string, unknown>): Promise<number> {
  const prompt = await estimatePromptTokens(body, { tokenizer: tokenizerForProvider(route.provider.adapter.type) });
  const fallback = route.model.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS;
  return prompt + requestedOutputTokens(body, fallback);
}

/** An embeddings request's token estimate: its input (token arrays count as they are). */
export async function embeddingsTokenEstimate(route: Route, body: Record<string, unknown>): Promise<number> {
  const input = body.input;
  const list = Array.isArray(input) ? input : [input];
  let tokens = 0;
  const texts: string[] = [];
  for (const item of list) {
    if (typeof item === 'string') texts.push(item);
    else if (typeof item === 'number') tokens += 1;
    else if (Array.isArray(item)) tokens += item.length;
  }
  if (texts.length === 0) return tokens;
  const content = texts.join('\n');
  return tokens + (await estimatePromptTokens({ messages: [{ role: 'user', content }] }, { tokenizer: tokenizerForProvider(route.provider.adapter.type) }));
}
