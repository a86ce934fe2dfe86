/**
 * The account API under `/api/v1`, in OpenRouter's shapes where OpenRouter has the endpoint:
 * one generation's usage and cost, the calling key, the account's credits, and — for management
 * keys — the account's keys (list, create, read, change, delete).
 *
 * Authentication is the gateway's own (`GatewayContext.authenticate`); errors are thrown as
 * `GatewayError` and rendered by the app's error handler. Answers are built from ids, counts,
 * amounts and settings only. Money is integer nano-USD inside and USD numbers on the wire.
 *
 * Every change (a key created, updated or deleted) writes an `audit_log` row naming the
 * management key that made it, in the same transaction as the change.
 *
 * @see https://openrouter.ai/docs/api/api-reference
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { generateApiKey, generateKeyId, hashApiKey, last4, maskedKey } from '../auth/api-key.js';
import type { AuthedKey } from '../auth/authenticator.js';
import { windowStart, type LimitReset } from '../billing/accounting.js';
import { nanoToUsd, usdToNano } from '../billing/money.js';
import type { GatewayContext } from '../gateway/context.js';
import { GatewayError } from '../ir/errors.js';
import type { Catalog } from '../routing/catalog.js';
import { managementKeyActor, type AuditActor } from '../storage/audit-repo.js';
import { InvalidFieldError } from '../storage/errors.js';
import { MAX_ALLOWED_MODELS, MAX_KEY_NAME_LENGTH, type ApiKeyPatch, type ApiKeySummary } from '../storage/keys-repo.js';
import type { Repositories } from '../storage/repositories.js';
import type { KeyKind } from '../storage/schema.js';

/** What the account API needs besides the gateway context. */
export interface AccountApiDeps {
  repos: Repositories;
  /** Cache invalidation after a key or account changed (`KeyAuthenticator`). */
  authenticator: { invalidate(keyId: string): void; clear(): void };
  /** The server secret: new keys are stored as its HMAC. */
  secret: string;
  /** The gateway's clock, epoch ms. */
  now: () => number;
}

const LIMIT_RESETS = ['daily', 'weekly', 'monthly'] as const;
const KEY_KINDS = ['inference', 'management'] as const;

// ---------------------------------------------------------------------------------------------
// Input validation (zod): every failure is a 400 naming the field.

/** A zod failure → 400 with the first issue, naming the field (`param`). Never quotes values. */
export function invalidInput(error: z.ZodError): GatewayError {
  const issue = error.issues[0];
  if (issue === undefined) return new GatewayError('MR_ERR_INVALID_REQUEST', 'The request is invalid.');
  if (issue.code === 'unrecognized_keys') {
    const names = issue.keys.map((k) => `'${k}'`).join(', ');
    const where = issue.path.length ? ` in '${fieldPath(issue.path)}'` : '';
    return new GatewayError(
      'MR_ERR_INVALID_REQUEST',
      `Unknown field${issue.keys.length === 1 ? '' : 's'} ${names}${where}.`,
      { param: fieldPath([...issue.path, issue.keys[0] ?? '']) },
    );
  }
  if (issue.path.length === 0) {
    return new GatewayError('MR_ERR_INVALID_REQUEST', `The request body must be a JSON object (${issue.message}).`);
  }
  const param = fieldPath(issue.path);
  return new GatewayError('MR_ERR_INVALID_REQUEST', `'${param}': ${issue.message}.`, { param });
}

function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

/** Parses `value` with `schema` or throws the 400. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalidInput(r.error);
  return r.data;
}

/** A USD amount ≥ 0 with at most 9 decimals → nano-USD. */
export const usdLimit = z.number().transform((v, ctx) => {
  try {
    if (v < 0) throw new RangeError('negative');
    return usdToNano(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a number of USD ≥ 0 with at most 9 decimal places' });
    return z.NEVER;
  }
});

const keyName = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_KEY_NAME_LENGTH, `must be at most ${MAX_KEY_NAME_LENGTH} characters`)
  .refine((s) => !/\p{Cc}/u.test(s), 'must not contain control characters');

/** A date-time with an offset (`2026-01-31T00:00:00Z`) or a date (midnight UTC) → epoch ms. */
const isoTime = z.union([z.iso.datetime({ offset: true }), z.iso.date()], {
  error: 'must be an ISO 8601 date-time such as 2026-01-31T00:00:00Z, or a date such as 2026-01-31',
});

/** The key-settings schemas, bound to the catalog (model ids) and the clock (expiry in the future). */
export function keySchemas(catalog: Catalog, now: () => number) {
  const expiresAt = isoTime.transform((s, ctx) => {
    const t = Date.parse(s);
    if (!Number.isFinite(t) || t <= now()) {
      ctx.addIssue({ code: 'custom', message: 'must be in the future' });
      return z.NEVER;
    }
    return t;
  });
  const allowedModels = z
    .array(z.string())
    .max(MAX_ALLOWED_MODELS, `must name at most ${MAX_ALLOWED_MODELS} models`)
    .superRefine((ids, ctx) => {
      ids.forEach((id, i) => {
        if (!catalog.models.has(id)) {
          ctx.addIssue({ code: 'custom', path: [i], message: `'${id}' is not a model of this gateway (GET /v1/models lists them)` });
        }
      });
    })
    .transform((ids) => [...new Set(ids)]);
  const rate = z.number().int().positive().max(1_000_000_000).nullable().optional();
  const settings = {
    /** Overrides of the configured per-key rate limits; null: back to the default. */
    rate_limit: z.strictObject({ rpm: rate, tpm: rate, concurrency: rate }).optional(),
    limit: usdLimit.nullable().optional(),
    limit_reset: z.enum(LIMIT_RESETS).nullable().optional(),
    expires_at: expiresAt.nullable().optional(),
    allowed_models: allowedModels.nullable().optional(),
  };
  return {
    create: z.strictObject({ name: keyName, kind: z.enum(KEY_KINDS).optional(), ...settings }),
    patch: z.strictObject({ name: keyName.optional(), disabled: z.boolean().optional(), ...settings }),
  };
}

export type KeyCreateInput = z.output<ReturnType<typeof keySchemas>['create']>;
export type KeyPatchInput = z.output<ReturnType<typeof keySchemas>['patch']>;

// ---------------------------------------------------------------------------------------------
// Views

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** `name`, or the masked key (`mr_…abcd`) for a key without one. */
export function keyLabel(name: string | null, last: string): string {
  return name || maskedKey(last);
}

/** A key as the API shows it: settings and spend, never the key or its hash. */
export interface KeyView {
  id: string;
  name: string | null;
  label: string;
  kind: KeyKind;
  disabled: boolean;
  revoked_at: string | null;
  limit: number | null;
  limit_remaining: number | null;
  limit_reset: LimitReset | null;
  usage: number;
  created_at: string;
  expires_at: string | null;
  allowed_models: string[] | null;
  /** The key's own rate limits; null: the configured default applies. */
  rate_limit: { rpm: number | null; tpm: number | null; concurrency: number | null };
}

/** What is left of a limit given the spend in its window (never below 0), USD; null without a limit. */
function remaining(limitNano: number | null, spentNano: number): number | null {
  return limitNano === null ? null : nanoToUsd(Math.max(0, limitNano - spentNano));
}

/** The key with its all-time spend and what is left of its limit in the current window. */
export async function keyView(ctx: GatewayContext, k: ApiKeySummary, now: number): Promise<KeyView> {
  const subject = { keyId: k.id, limitReset: k.limitReset };
  const [usage, windowSpent] = await Promise.all([
    ctx.accounting.keySpent(subject, 0),
    k.spendLimitNano !== null && k.limitReset !== null ? ctx.accounting.keySpent(subject, windowStart(k.limitReset, now)) : undefined,
  ]);
  return {
    id: k.id,
    name: k.name,
    label: keyLabel(k.name, k.last4),
    kind: k.kind,
    disabled: k.disabled,
    revoked_at: iso(k.revokedAt),
    limit: k.spendLimitNano === null ? null : nanoToUsd(k.spendLimitNano),
    limit_remaining: remaining(k.spendLimitNano, windowSpent ?? usage),
    limit_reset: k.limitReset,
    usage: nanoToUsd(usage),
    created_at: new Date(k.createdAt).toISOString(),
    expires_at: iso(k.expiresAt),
    allowed_models: k.allowedModels,
    rate_limit: { ...k.rateLimits },
  };
}

// ---------------------------------------------------------------------------------------------
// Shared operations (the admin API creates keys the same way)

/** A storage refusal of a value → 400 naming the API field. */
function fromInvalidField(err: InvalidFieldError): GatewayError {
  const param =
    ({
      spendLimitNano: 'limit',
      limitReset: 'limit_reset',
      expiresAt: 'expires_at',
      allowedModels: 'allowed_models',
      'rateLimits.rpm': 'rate_limit.rpm',
      'rateLimits.tpm': 'rate_limit.tpm',
      'rateLimits.concurrency': 'rate_limit.concurrency',
    } as Record<string, string>)[err.field] ?? err.field;
  return new GatewayError('MR_ERR_INVALID_REQUEST', err.message, { param });
}

async function storage<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof InvalidFieldError) throw fromInvalidField(err);
    throw err;
  }
}

/**
 * Creates a key for the account; the answer holds the key itself, shown this once. The key and
 * its `key.created` audit row (by `actor`) are written in one transaction.
 */
export async function createKey(
  ctx: GatewayContext,
  deps: Pick<AccountApiDeps, 'repos' | 'secret' | 'now'>,
  accountId: string,
  input: KeyCreateInput,
  actor: AuditActor,
): Promise<{ data: KeyView; key: string }> {
  const key = generateApiKey();
  const id = generateKeyId();
  await storage(
    deps.repos.audit.transaction(async (tx) => {
      await tx.keys.insertKey({
        id,
        accountId,
        name: input.name,
        keyHash: hashApiKey(key, deps.secret),
        last4: last4(key),
        kind: input.kind ?? 'inference',
        spendLimitNano: input.limit ?? null,
        limitReset: input.limit_reset ?? null,
        expiresAt: input.expires_at ?? null,
        allowedModels: input.allowed_models ?? null,
        ...(input.rate_limit ? { rateLimits: rateLimitsOf(input.rate_limit) } : {}),
      });
      await tx.audit.record({ actor, action: 'key.created', accountId, keyId: id });
    }),
  );
  const created = await deps.repos.keys.getKey(id, accountId);
  if (!created) throw new GatewayError('MR_ERR_INTERNAL', 'The key was not stored.');
  return { data: await keyView(ctx, created, deps.now()), key };
}

function toPatch(input: KeyPatchInput): ApiKeyPatch {
  const patch: ApiKeyPatch = {};
  if (input.name !== undefined) patch.name = input.name;
  if (input.disabled !== undefined) patch.disabled = input.disabled;
  if (input.limit !== undefined) patch.spendLimitNano = input.limit;
  if (input.limit_reset !== undefined) patch.limitReset = input.limit_reset;
  if (input.expires_at !== undefined) patch.expiresAt = input.expires_at;
  if (input.allowed_models !== undefined) patch.allowedModels = input.allowed_models;
  if (input.rate_limit !== undefined) patch.rateLimits = rateLimitsOf(input.rate_limit);
  return patch;
}

function rateLimitsOf(r: { rpm?: number | null | undefined; tpm?: number | null | undefined; concurrency?: number | null | undefined }) {
  const out: { rpm?: number | null; tpm?: number | null; concurrency?: number | null } = {};
  if (r.rpm !== undefined) out.rpm = r.rpm;
  if (r.tpm !== undefined) out.tpm = r.tpm;
  if (r.concurrency !== undefined) out.concurrency = r.concurrency;
  return out;
}

function keyNotFound(): GatewayError {
  return new GatewayError('MR_ERR_NOT_FOUND', 'No API key with this id in this account.', { param: 'id' });
}

// ---------------------------------------------------------------------------------------------
// Routes

type IdParams = { Params: { id: string } };

export function registerAccountApi(app: FastifyInstance, ctx: GatewayContext, deps: AccountApiDeps): void {
  const schemas = keySchemas(ctx.catalog, deps.now);
  const callers = new WeakMap<FastifyRequest, AuthedKey>();
  const caller = (request: FastifyRequest): AuthedKey => callers.get(request)!;

  /** A management key of the caller's account, or 403. */
  const manager = (request: FastifyRequest): AuthedKey => {
    const key = caller(request);
    if (key.kind !== 'management') {
      throw new GatewayError('MR_ERR_FORBIDDEN', 'Managing keys needs a management key; this is an inference key.');
    }
    return key;
  };

  app.register(
    async (api) => {
      // Authenticated before the body is read: a caller without a valid key learns nothing else.
      api.addHook('onRequest', async (request) => {
        callers.set(request, await ctx.authenticate(request.headers.authorization));
      });

      api.get<{ Querystring: { id?: unknown } }>('/generation', async (request) => {
        const key = caller(request);
        const id = request.query.id;
        if (typeof id !== 'string' || id === '') {
          throw new GatewayError('MR_ERR_INVALID_REQUEST', "The query parameter 'id' (a generation id) is required.", { param: 'id' });
        }
        const g = await deps.repos.usage.getGeneration(id, key.accountId);
        if (!g) {
          throw new GatewayError(
            'MR_ERR_NOT_FOUND',
            'No generation with this id in this account (usage is recorded a moment after the response; retry shortly).',
            { param: 'id' },
          );
        }
        return {
          data: {
            id: g.id,
            model: g.model,
            provider: g.provider,
            upstream_model: g.upstreamModel,
            streamed: g.streamed,
            status: g.status,
            latency_ms: g.latencyMs,
            created_at: new Date(g.createdAt).toISOString(),
            tokens_prompt: g.promptTokens,
            tokens_completion: g.completionTokens,
            tokens_cached: g.cachedTokens,
            tokens_reasoning: g.reasoningTokens,
            total_cost: nanoToUsd(g.costNano),
            cost_estimated: g.costEstimated,
          },
        };
      });

      api.get('/key', async (request) => {
        const key = caller(request);
        const k = await deps.repos.keys.getKey(key.keyId, key.accountId);
        if (!k) throw new GatewayError('MR_ERR_UNAUTHORIZED', 'Invalid API key.');
        const now = deps.now();
        const subject = { keyId: k.id, limitReset: k.limitReset };
        const spent = (reset: LimitReset | null) => ctx.accounting.keySpent(subject, windowStart(reset, now));
        const [usage, daily, weekly, monthly] = await Promise.all([spent(null), spent('daily'), spent('weekly'), spent('monthly')]);
        const inWindow = k.limitReset === null ? usage : { daily, weekly, monthly }[k.limitReset];
        return {
          data: {
            label: keyLabel(k.name, k.last4),
            limit: k.spendLimitNano === null ? null : nanoToUsd(k.spendLimitNano),
            limit_remaining: remaining(k.spendLimitNano, inWindow),
            limit_reset: k.limitReset,
            usage: nanoToUsd(usage),
            usage_daily: nanoToUsd(daily),
            usage_weekly: nanoToUsd(weekly),
            usage_monthly: nanoToUsd(monthly),
            is_management_key: k.kind === 'management',
            expires_at: iso(k.expiresAt),
            allowed_models: k.allowedModels,
          },
        };
      });

      api.get('/credits', async (request) => {
        const { accountId } = caller(request);
        const [totals, usage] = await Promise.all([deps.repos.ledger.totals(accountId), deps.repos.usage.sumCost({ accountId })]);
        if (!totals) throw new GatewayError('MR_ERR_UNAUTHORIZED', 'Invalid API key.');
        // Credits net of negative adjustments; usage includes charges not yet written.
        const credits = totals.balanceNano + totals.chargesNano;
        return { data: { total_credits: nanoToUsd(credits), total_usage: nanoToUsd(usage + ctx.accounting.pendingFor(accountId)) } };
      });

      api.get('/keys', async (request) => {
        const { accountId } = manager(request);
        const keys = await deps.repos.keys.listKeys(accountId);
        const now = deps.now();
        return { data: await Promise.all(keys.map((k) => keyView(ctx, k, now))) };
      });

      api.post('/keys', async (request, reply) => {
        const { accountId, keyId } = manager(request);
        const input = parseInput(schemas.create, request.body);
        const created = await createKey(ctx, deps, accountId, input, managementKeyActor(keyId));
        reply.status(201);
        return created;
      });

      api.get<IdParams>('/keys/:id', async (request) => {
        const { accountId } = manager(request);
        const k = await deps.repos.keys.getKey(request.params.id, accountId);
        if (!k) throw keyNotFound();
        return { data: await keyView(ctx, k, deps.now()) };
      });

      api.patch<IdParams>('/keys/:id', async (request) => {
        const { accountId, keyId } = manager(request);
        const input = parseInput(schemas.patch, request.body === undefined ? {} : request.body);
        const patch = toPatch(input);
        const k = await storage(
          deps.repos.audit.transaction(async (tx) => {
            const updated = await tx.keys.updateKey(accountId, request.params.id, patch);
            // An empty patch changes nothing and is not recorded.
            if (updated && Object.keys(patch).length > 0) {
              await tx.audit.record({ actor: managementKeyActor(keyId), action: 'key.updated', accountId, keyId: updated.id });
            }
            return updated;
          }),
        );
        if (!k) throw keyNotFound();
        // This process applies the change at once; other processes when their cache entry expires.
        deps.authenticator.invalidate(k.id);
        ctx.accounting.invalidateKey(k.id);
        return { data: await keyView(ctx, k, deps.now()) };
      });

      api.delete<IdParams>('/keys/:id', async (request) => {
        const { accountId, keyId } = manager(request);
        const id = request.params.id;
        const deleted = await deps.repos.audit.transaction(async (tx) => {
          if (!(await tx.keys.deleteKey(accountId, id))) return false;
          await tx.audit.record({ actor: managementKeyActor(keyId), action: 'key.deleted', accountId, keyId: id });
          return true;
        });
        if (!deleted) throw keyNotFound();
        deps.authenticator.invalidate(id);
        ctx.accounting.invalidateKey(id);
        return { deleted: true };
      });
    },
    { prefix: '/api/v1' },
  );
}
