/**
 * The configuration file's schema: a public contract. Extend it; never rename a field.
 * `maxrouter serve --config FILE` (YAML; JSON is valid YAML); `${VAR}` interpolates env vars.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { usdToNano } from '../billing/money.js';

export const PROVIDER_TYPES = ['openai', 'anthropic', 'gemini', 'openai-compatible'] as const;

/** Default base URLs, as each provider's official SDK uses them. */
export const DEFAULT_BASE_URLS: Record<(typeof PROVIDER_TYPES)[number], string | undefined> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com',
  gemini: 'https://generativelanguage.googleapis.com',
  'openai-compatible': undefined,
};

const httpUrl = z
  .string()
  .refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL');

/**
 * A price in USD (per million tokens, or per request): non-negative, with at most 9 decimal
 * places, so that it converts exactly to integer nano-USD (see src/billing/money.ts).
 */
const usdPrice = z
  .number()
  .nonnegative()
  .superRefine((v, ctx) => {
    if (!(v >= 0)) return; // reported by nonnegative()
    try {
      usdToNano(v);
    } catch {
      const tooLarge = v > Number.MAX_SAFE_INTEGER / 1e9;
      ctx.addIssue({
        code: 'custom',
        message: tooLarge
          ? `${String(v)} is too large (at most 9007199.254740991)`
          : `${String(v)} must have at most 9 decimal places (the smallest step is 0.000000001)`,
      });
    }
  });

/**
 * An endpoint's prices, in USD per million tokens (`request`: USD per request). Absent prices
 * default to the price they refine, see docs/configuration.md and docs/billing.md.
 */
export const pricingSchema = z
  .object({
    /** USD per million input (prompt) tokens. */
    input: usdPrice,
    /** USD per million output (completion) tokens. */
    output: usdPrice.default(0),
    /** USD per million cached input tokens (cache reads). Default: `input`. */
    cachedInput: usdPrice.optional(),
    /** USD per million tokens written to the cache (Anthropic: 5-minute writes). Default: `input`. */
    cacheWrite: usdPrice.optional(),
    /** USD per million tokens written to Anthropic's 1-hour cache. Default: `cacheWrite`. */
    cacheWrite1h: usdPrice.optional(),
    /** USD per million reasoning (thinking) tokens. Default: `output`. */
    reasoning: usdPrice.optional(),
    /** USD per request, on top of token prices. Default: 0. */
    request: usdPrice.optional(),
  })
  .strict();

export const endpointSchema = z
  .object({
    /** A provider `id` from `providers`. */
    provider: z.string().min(1),
    /** The model id at that provider. */
    model: z.string().min(1),
    pricing: pricingSchema.optional(),
    /** Share of traffic among the model's endpoints when a request names no order or sort (relative). */
    weight: z.number().positive().max(1_000_000).default(1),
    /** The provider retains no prompt or completion data for this endpoint (zero data retention). */
    zdr: z.boolean().default(false),
    /** Whether the provider may use request data (training, collection): `allow` or `deny`. */
    dataCollection: z.enum(['allow', 'deny']).default('allow'),
  })
  .strict();

export const modelSchema = z
  .object({
    /** The id clients send, e.g. `openai/gpt-4o-mini`. */
    id: z.string().min(1),
    name: z.string().optional(),
    /** `chat` (default) or `embedding`. */
    kind: z.enum(['chat', 'embedding']).default('chat'),
    contextLength: z.number().int().positive().optional(),
    /** Maximum output tokens; used as Anthropic's required `max_tokens` when a client sends none. */
    maxOutputTokens: z.number().int().positive().optional(),
    endpoints: z.array(endpointSchema).min(1),
  })
  .strict();

/** Requests per minute, tokens per minute and concurrent requests; absent = unlimited. */
export const rateLimitsSchema = z
  .object({
    rpm: z.number().int().positive().optional(),
    tpm: z.number().int().positive().optional(),
    concurrency: z.number().int().positive().optional(),
  })
  .strict();

export const providerSchema = z
  .object({
    id: z.string().regex(/^[a-zA-Z0-9._-]+$/, 'letters, digits, dot, dash and underscore only'),
    type: z.enum(PROVIDER_TYPES),
    baseUrl: httpUrl.optional(),
    apiKey: z.string().optional(),
    /** Static headers sent with every upstream request. */
    headers: z.record(z.string(), z.string()).optional(),
    /** Upstream connection pool size (connections per origin). */
    connections: z.number().int().positive().max(10_000).default(128),
    /** Timeouts in milliseconds. */
    timeouts: z
      .object({
        connect: z.number().int().positive().default(10_000),
        /** Until the response headers arrive. */
        headers: z.number().int().positive().default(300_000),
        /** Between two body chunks (stream idle). */
        body: z.number().int().positive().default(300_000),
        /** The whole call, first byte to last (unset: no limit beyond the others). */
        total: z.number().int().positive().optional(),
      })
      .strict()
      .default({ connect: 10_000, headers: 300_000, body: 300_000 }),
    /** Caps that keep the gateway inside this provider account's quota. */
    limits: z
      .object({
        rpm: z.number().int().positive().optional(),
        concurrency: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** One `http.trustProxy` entry: an IP address, a CIDR range, or one of proxy-addr's names. */
export function isTrustProxyEntry(s: string): boolean {
  if (PROXY_KEYWORDS.has(s)) return true;
  const slash = s.indexOf('/');
  if (slash < 0) return isIP(s) !== 0;
  const family = isIP(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

const trustProxyEntry = z
  .string()
  .refine(isTrustProxyEntry, 'must be an IP address, a CIDR range (e.g. 10.0.0.0/8), loopback, linklocal or uniquelocal');

export const HTTP_DEFAULTS = {
  trustProxy: false,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 72_000,
  maxJsonDepth: 64,
  maxJsonItems: 100_000,
} as const;

export const httpSchema = z
  .object({
    /**
     * Which peers' `X-Forwarded-For` / `-Proto` / `-Host` to believe (Fastify's `trustProxy`):
     * `false` (none, default), `true` (any), or the proxies' addresses and CIDR ranges. No hop
     * count: it cannot tell a proxy from a client, and Fastify trusts nothing with one.
     */
    trustProxy: z
      .union([z.boolean(), trustProxyEntry, z.array(trustProxyEntry).min(1)], {
        error: 'must be true, false, or the proxies as addresses and CIDR ranges (a string or a list)',
      })
      .default(HTTP_DEFAULTS.trustProxy),
    /** A client must send its request headers within this many ms of starting the request (HTTP/1.1). */
    headersTimeoutMs: z.number().int().positive().max(3_600_000).default(HTTP_DEFAULTS.headersTimeoutMs),
    /** A client must send the whole request, body included, within this many ms; the response is not limited by it. */
    requestTimeoutMs: z.number().int().positive().max(3_600_000).default(HTTP_DEFAULTS.requestTimeoutMs),
    /** An idle connection (HTTP/1.1 keep-alive, HTTP/2 session) is closed after this many ms. */
    keepAliveTimeoutMs: z.number().int().positive().max(3_600_000).default(HTTP_DEFAULTS.keepAliveTimeoutMs),
    /** Deepest nesting of arrays and objects accepted in a JSON request body. */
    maxJsonDepth: z.number().int().min(1).max(10_000).default(HTTP_DEFAULTS.maxJsonDepth),
    /** Most elements in one JSON array (or members in one object) of a request body. */
    maxJsonItems: z.number().int().min(1).max(100_000_000).default(HTTP_DEFAULTS.maxJsonItems),
  })
  .strict()
  .superRefine((h, ctx) => {
    // Node refuses a headers timeout longer than the request timeout.
    if (h.headersTimeoutMs > h.requestTimeoutMs) {
      ctx.addIssue({ code: 'custom', path: ['headersTimeoutMs'], message: `must not exceed requestTimeoutMs (${h.requestTimeoutMs})` });
    }
  });

export const configSchema = z
  .object({
    listen: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8787),
        /** Serve HTTPS (TLS 1.3 only, HTTP/2 and HTTP/1.1): paths to PEM files, read at start. Absent: plain HTTP. */
        tls: z
          .object({
            /** The certificate chain (PEM), leaf first. */
            cert: z.string().min(1),
            /** The private key (PEM, unencrypted). */
            key: z.string().min(1),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8787 }),
    /** The client-facing HTTP server: proxies in front, timeouts against slow clients, JSON body limits. */
    http: httpSchema.default(HTTP_DEFAULTS),
    /** `sqlite:PATH` (default `sqlite:./data/maxrouter.db`) or `postgres://…`. */
    database: z
      .string()
      .refine((s) => /^sqlite:/.test(s) || /^postgres(ql)?:\/\//.test(s), 'must start with sqlite: or postgres://')
      .default('sqlite:./data/maxrouter.db'),
    /** Where generated files (the server secret, SQLite database) live. */
    dataDir: z.string().default('./data'),
    /** Server secret for key hashing (≥ 32 characters). Generated into the data dir when absent. */
    secret: z.string().min(32, 'must be at least 32 characters').optional(),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
    limits: z
      .object({
        /** Maximum request body in bytes (default 32 MiB, as Anthropic's Messages API). */
        bodyBytes: z.number().int().positive().default(32 * 1024 * 1024),
        /** Default rate limits of every API key (a key may override them). */
        key: rateLimitsSchema.default({}),
        /** Rate limits of every account (all its keys together). */
        account: rateLimitsSchema.default({}),
        /** When Redis cannot be reached: `open` admits without limits (and warns), `closed` answers 503. */
        redisFailure: z.enum(['open', 'closed']).default('open'),
      })
      .strict()
      .default({ bodyBytes: 32 * 1024 * 1024, key: {}, account: {}, redisFailure: 'open' }),
    /** `redis://…`: shared rate limits (and, later, shared counters) across gateway instances. Unset: in memory. */
    redis: z
      .string()
      .refine((s) => /^rediss?:\/\//.test(s), 'must start with redis:// or rediss://')
      .optional(),
    /** Retries and fallbacks per request (docs/routing.md). */
    retries: z
      .object({
        /** Attempts on one endpoint, the first included (1: no retry on the same endpoint). */
        attemptsPerEndpoint: z.number().int().min(1).max(10).default(2),
        /** Attempts in all, across endpoints and fallback models. */
        maxAttempts: z.number().int().min(1).max(20).default(5),
        /** No attempt starts later than this after the first, ms. */
        timeBudgetMs: z.number().int().positive().max(600_000).default(30_000),
        /** The longest upstream `retry-after` honoured by waiting, ms. */
        maxRetryAfterMs: z.number().int().min(0).max(600_000).default(4_000),
      })
      .strict()
      .default({ attemptsPerEndpoint: 2, maxAttempts: 5, timeBudgetMs: 30_000, maxRetryAfterMs: 4_000 }),
    /** Per-endpoint circuit breakers (docs/routing.md). */
    circuitBreaker: z
      .object({
        /** Consecutive failures that open an endpoint's breaker. */
        failureThreshold: z.number().int().min(1).max(1000).default(5),
        /** The first cool-down before a probe, ms (doubles on repeated opens). */
        coolDownMs: z.number().int().positive().max(3_600_000).default(30_000),
        /** The longest cool-down, ms. */
        maxCoolDownMs: z.number().int().positive().max(86_400_000).default(300_000),
      })
      .strict()
      .default({ failureThreshold: 5, coolDownMs: 30_000, maxCoolDownMs: 300_000 }),
    /** Spending control: `credits` (prepaid, enforced) or `track` (costs recorded, nothing enforced). */
    billing: z
      .object({
        /** The default for accounts without their own mode. */
        mode: z.enum(['track', 'credits']).default('track'),
        /** How long a cached balance or key spend is trusted before it is read again, ms. */
        refreshMs: z.number().int().positive().max(3_600_000).default(5_000),
      })
      .strict()
      .default({ mode: 'track', refreshMs: 5_000 }),
    /** The operator's admin API (`/admin/v1/…`): off unless a key is set. */
    admin: z
      .object({
        /** Bearer token of the admin API (≥ 32 characters); usually `${MAXROUTER_ADMIN_KEY}`. */
        key: z.string().min(32, 'must be at least 32 characters').optional(),
      })
      .strict()
      .default({}),
    /** Graceful shutdown (SIGTERM/SIGINT). */
    shutdown: z
      .object({
        /** How long in-flight requests and streams may run on after the signal, ms; then they are ended. */
        graceMs: z.number().int().min(0).max(3_600_000).default(25_000),
      })
      .strict()
      .default({ graceMs: 25_000 }),
    providers: z.array(providerSchema).default([]),
    models: z.array(modelSchema).default([]),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    for (const issue of crossReferenceIssues(cfg)) ctx.addIssue({ code: 'custom', ...issue });
  });

/**
 * What no single field's schema can see: duplicate provider and model ids, endpoints naming an
 * undeclared provider, an `openai-compatible` provider without `baseUrl`. Reads its input
 * loosely, so `check-config` can report these beside other fields' problems too (the schema's
 * own refinement is skipped when any field's value is invalid).
 */
export function crossReferenceIssues(cfg: unknown): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  const field = (o: unknown, k: string): unknown => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined);
  const ids = new Map<string, number>();
  list(field(cfg, 'providers')).forEach((p, i) => {
    const id = field(p, 'id');
    if (typeof id !== 'string') return;
    if (ids.has(id)) issues.push({ path: ['providers', i, 'id'], message: `duplicate provider id '${id}'` });
    ids.set(id, i);
    if (field(p, 'type') === 'openai-compatible' && !field(p, 'baseUrl')) {
      issues.push({ path: ['providers', i, 'baseUrl'], message: 'required for type openai-compatible' });
    }
  });
  const modelIds = new Set<string>();
  list(field(cfg, 'models')).forEach((m, i) => {
    const id = field(m, 'id');
    if (typeof id === 'string') {
      if (modelIds.has(id)) issues.push({ path: ['models', i, 'id'], message: `duplicate model id '${id}'` });
      modelIds.add(id);
    }
    list(field(m, 'endpoints')).forEach((e, j) => {
      const provider = field(e, 'provider');
      if (typeof provider === 'string' && !ids.has(provider)) {
        issues.push({
          path: ['models', i, 'endpoints', j, 'provider'],
          message: `unknown provider '${provider}' (declared: ${[...ids.keys()].join(', ') || 'none'})`,
        });
      }
    });
  });
  return issues;
}

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ProviderConfig = z.output<typeof providerSchema>;
export type ModelConfig = z.output<typeof modelSchema>;
export type EndpointConfig = z.output<typeof endpointSchema>;
export type Pricing = z.output<typeof pricingSchema>;
export type HttpConfig = z.output<typeof httpSchema>;
export type TlsConfig = NonNullable<Config['listen']['tls']>;
