/**
 * The operator's admin API under `/admin/v1`: accounts, credits, the ledger, an account's first
 * keys, and usage reports. Registered only when `admin.key` is configured (otherwise every
 * `/admin/v1` path is an unknown route, 404). `Authorization: Bearer <admin key>` is compared
 * in constant time (SHA-256 digests of both sides, `timingSafeEqual`), before the body is read;
 * anything else is a 401.
 *
 * Every change (an account created, disabled or enabled, its billing mode changed, a key created,
 * credits added or adjusted) writes an `audit_log` row with the actor `admin`: in the same
 * transaction as the change, except for credits, whose ledger row commits first (see
 * `recordCredits`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { formatUsd, nanoToUsd, usdToNano } from '../billing/money.js';
import type { GatewayContext } from '../gateway/context.js';
import { GatewayError } from '../ir/errors.js';
import type { Account } from '../storage/accounts-repo.js';
import { ADMIN_ACTOR } from '../storage/audit-repo.js';
import { AccountNotFoundError, DuplicateEmailError, InvalidEmailError, InvalidFieldError } from '../storage/errors.js';
import type { LedgerEntry } from '../storage/ledger-repo.js';
import { MAX_ENTRIES_LIMIT } from '../storage/ledger-repo.js';
import type { ReportRow } from '../storage/usage-repo.js';
import { createKey, keySchemas, parseInput, type AccountApiDeps } from './account-api.js';

export interface AdminApiDeps extends AccountApiDeps {
  /** The configured `admin.key`. */
  adminKey: string;
}

const MS_PER_DAY = 86_400_000;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

// ---------------------------------------------------------------------------------------------
// Usage reports (shared with `maxrouter usage report`)

/** A bad report day; `field` is `from` or `to`. */
export class DayRangeError extends RangeError {
  constructor(
    readonly field: 'from' | 'to',
    message: string,
  ) {
    super(message);
    this.name = 'DayRangeError';
  }
}

/** `YYYY-MM-DD` → epoch ms of that UTC midnight; throws a `DayRangeError`. */
export function parseDay(text: string, field: 'from' | 'to'): number {
  const m = DAY.exec(text);
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || !Number.isFinite(t) || new Date(t).toISOString().slice(0, 10) !== text) {
    throw new DayRangeError(field, `${field} must be a date as YYYY-MM-DD`);
  }
  return t;
}

/** The report range for the UTC days `from` to `to`, both included: epoch ms, `to` exclusive. */
export function dayRange(from: string, to: string): { from: number; to: number } {
  const start = parseDay(from, 'from');
  const end = parseDay(to, 'to');
  if (end < start) throw new DayRangeError('to', 'to must not be before from');
  return { from: start, to: end + MS_PER_DAY };
}

/** One report row on the wire (JSON). */
export interface UsageRowView {
  date: string;
  account_id: string;
  key_id: string;
  model: string;
  requests: number;
  tokens_prompt: number;
  tokens_completion: number;
  tokens_cached: number;
  tokens_reasoning: number;
  /** USD. */
  cost: number;
}

export function usageRowView(r: ReportRow): UsageRowView {
  return {
    date: r.day,
    account_id: r.accountId,
    key_id: r.keyId,
    model: r.model,
    requests: r.requests,
    tokens_prompt: r.promptTokens,
    tokens_completion: r.completionTokens,
    tokens_cached: r.cachedTokens,
    tokens_reasoning: r.reasoningTokens,
    cost: nanoToUsd(r.costNano),
  };
}

export const USAGE_CSV_HEADER = 'date,account_id,key_id,model,requests,tokens_prompt,tokens_completion,tokens_cached,tokens_reasoning,cost_usd';

/** RFC 4180 quoting where needed. (Ids come from the config and the gateway, never from callers.) */
function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The report as CSV: a header line, then one line per row; costs as exact decimal USD. */
export function usageCsv(rows: readonly ReportRow[]): string {
  let out = USAGE_CSV_HEADER + '\n';
  for (const r of rows) {
    out +=
      [
        r.day,
        csvField(r.accountId),
        csvField(r.keyId),
        csvField(r.model),
        r.requests,
        r.promptTokens,
        r.completionTokens,
        r.cachedTokens,
        r.reasoningTokens,
        formatUsd(r.costNano),
      ].join(',') + '\n';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Views and errors

function accountView(ctx: GatewayContext, a: Account) {
  return {
    id: a.id,
    email: a.email,
    created_at: new Date(a.createdAt).toISOString(),
    disabled: a.disabled,
    /** null: the deployment's default (`billing.mode`). */
    billing_mode: a.billingMode,
    /** Routing data policy its requests cannot relax (docs/routing.md). */
    zdr: a.requireZdr,
    data_collection: a.denyDataCollection ? 'deny' : 'allow',
    /** USD, less charges this process has not written yet. */
    balance: nanoToUsd(a.balanceNano - ctx.accounting.pendingFor(a.id)),
  };
}

function ledgerView(e: LedgerEntry) {
  return {
    id: e.id,
    kind: e.kind,
    amount: nanoToUsd(e.amountNano),
    reason: e.reason,
    generation_id: e.generationId,
    created_at: new Date(e.createdAt).toISOString(),
  };
}

/**
 * The audit row of a top-up or adjustment. `LedgerRepo.append` commits the ledger row and the
 * balance in its own transaction, so this row is written right after it. Should that write fail,
 * the request fails (500) saying that the credit WAS applied and under which ledger id, so that
 * nobody repeats it; the ledger row, never deleted, still records the movement.
 */
async function recordCredits(deps: Pick<AdminApiDeps, 'repos'>, entry: LedgerEntry): Promise<void> {
  try {
    await deps.repos.audit.record({
      actor: ADMIN_ACTOR,
      action: entry.kind === 'adjustment' ? 'credits.adjusted' : 'credits.added',
      accountId: entry.accountId,
      ledgerId: entry.id,
    });
  } catch {
    throw new GatewayError(
      'MR_ERR_INTERNAL',
      `The ${entry.kind} was applied (ledger entry ${entry.id}), but its audit-log row could not be written. Do not repeat the request.`,
    );
  }
}

function accountNotFound(): GatewayError {
  return new GatewayError('MR_ERR_NOT_FOUND', 'No account with this id.', { param: 'id' });
}

function adminUnauthorized(): GatewayError {
  return new GatewayError('MR_ERR_UNAUTHORIZED', 'Invalid admin key.');
}

const BEARER = /^bearer\s+/i;

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

// ---------------------------------------------------------------------------------------------
// Input schemas

const billingMode = z.enum(['credits', 'track']);

const createAccountBody = z.strictObject({ email: z.string(), billing_mode: billingMode.nullable().optional() });
const patchAccountBody = z.strictObject({
  disabled: z.boolean().optional(),
  billing_mode: billingMode.nullable().optional(),
  zdr: z.boolean().optional(),
  data_collection: z.enum(['allow', 'deny']).optional(),
});
const creditsBody = z.strictObject({
  usd: z.number(),
  reason: z.string(),
  kind: z.enum(['topup', 'adjustment']).optional(),
});
const positiveInt = (max: number) =>
  z
    .string()
    .regex(/^\d{1,7}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(1).max(max));
const ledgerQuery = z.strictObject({ limit: positiveInt(MAX_ENTRIES_LIMIT).optional(), before: z.string().optional() });
const usageQuery = z.strictObject({
  account: z.string().optional(),
  from: z.string(),
  to: z.string(),
  format: z.enum(['json', 'csv']).optional(),
});

// ---------------------------------------------------------------------------------------------
// Routes

type IdParams = { Params: { id: string } };

export function registerAdminApi(app: FastifyInstance, ctx: GatewayContext, deps: AdminApiDeps): void {
  const expected = digest(deps.adminKey);
  const keys = keySchemas(ctx.catalog, deps.now);

  const existing = async (id: string): Promise<Account> => {
    const a = await deps.repos.accounts.findAccountById(id);
    if (!a) throw accountNotFound();
    return a;
  };

  app.register(
    async (admin) => {
      admin.addHook('onRequest', async (request) => {
        const header = request.headers.authorization;
        if (typeof header !== 'string' || header.length > 1024 || !BEARER.test(header)) throw adminUnauthorized();
        if (!timingSafeEqual(digest(header.replace(BEARER, '').trim()), expected)) throw adminUnauthorized();
      });

      admin.post('/accounts', async (request, reply) => {
        const input = parseInput(createAccountBody, request.body);
        const mode = input.billing_mode ?? null;
        let account: Account;
        try {
          // The account, its billing mode and their audit rows commit together.
          account = await deps.repos.audit.transaction(async (tx) => {
            const created = await tx.accounts.createAccount(input.email);
            await tx.audit.record({ actor: ADMIN_ACTOR, action: 'account.created', accountId: created.id });
            if (mode === null) return created;
            await tx.accounts.setBillingMode(created.id, mode);
            await tx.audit.record({ actor: ADMIN_ACTOR, action: 'account.billing_mode_changed', accountId: created.id });
            return { ...created, billingMode: mode };
          });
        } catch (err) {
          if (err instanceof InvalidEmailError) {
            throw new GatewayError('MR_ERR_INVALID_REQUEST', "'email' is not a valid email address.", { param: 'email' });
          }
          if (err instanceof DuplicateEmailError) {
            throw new GatewayError('MR_ERR_INVALID_REQUEST', 'An account with this email already exists.', { param: 'email', status: 409 });
          }
          throw err;
        }
        reply.status(201);
        return { data: accountView(ctx, account) };
      });

      admin.get('/accounts', async () => {
        const accounts = await deps.repos.accounts.listAccounts();
        return { data: accounts.map((a) => accountView(ctx, a)) };
      });

      admin.patch<IdParams>('/accounts/:id', async (request) => {
        const input = parseInput(patchAccountBody, request.body === undefined ? {} : request.body);
        const id = request.params.id;
        // Each change and its audit row commit together; a value set to what it already is
        // changes nothing and is not recorded.
        const found = await deps.repos.audit.transaction(async (tx) => {
          const before = await tx.accounts.findAccountById(id);
          if (!before) return false;
          if (input.disabled !== undefined && input.disabled !== before.disabled) {
            await tx.accounts.setDisabled(id, input.disabled);
            await tx.audit.record({ actor: ADMIN_ACTOR, action: input.disabled ? 'account.disabled' : 'account.enabled', accountId: id });
          }
          if (input.billing_mode !== undefined && input.billing_mode !== before.billingMode) {
            await tx.accounts.setBillingMode(id, input.billing_mode);
            await tx.audit.record({ actor: ADMIN_ACTOR, action: 'account.billing_mode_changed', accountId: id });
          }
          const zdr = input.zdr !== undefined && input.zdr !== before.requireZdr ? input.zdr : undefined;
          const deny =
            input.data_collection !== undefined && (input.data_collection === 'deny') !== before.denyDataCollection
              ? input.data_collection === 'deny'
              : undefined;
          if (zdr !== undefined || deny !== undefined) {
            await tx.accounts.setRoutingPolicy(id, {
              ...(zdr !== undefined ? { requireZdr: zdr } : {}),
              ...(deny !== undefined ? { denyDataCollection: deny } : {}),
            });
            await tx.audit.record({ actor: ADMIN_ACTOR, action: 'account.routing_changed', accountId: id });
          }
          return true;
        });
        if (!found) throw accountNotFound();
        // Cached keys carry their account's state: drop them all so the change applies at once.
        deps.authenticator.clear();
        ctx.accounting.invalidateAccount(id);
        return { data: accountView(ctx, await existing(id)) };
      });

      admin.post<IdParams>('/accounts/:id/credits', async (request, reply) => {
        const input = parseInput(creditsBody, request.body);
        const kind = input.kind ?? 'topup';
        let amountNano: number;
        try {
          amountNano = usdToNano(input.usd, { allowNegative: kind === 'adjustment' });
          if (amountNano === 0) throw new RangeError('zero');
        } catch {
          throw new GatewayError(
            'MR_ERR_INVALID_REQUEST',
            kind === 'topup'
              ? "'usd' must be a positive number of USD with at most 9 decimal places (use kind 'adjustment' to remove credit)."
              : "'usd' must be a non-zero number of USD with at most 9 decimal places.",
            { param: 'usd' },
          );
        }
        const accountId = request.params.id;
        let result;
        try {
          result = await deps.repos.ledger.append({ accountId, kind, amountNano, reason: input.reason });
        } catch (err) {
          if (err instanceof AccountNotFoundError) throw accountNotFound();
          if (err instanceof InvalidFieldError) {
            const param = err.field === 'amountNano' ? 'usd' : err.field;
            throw new GatewayError('MR_ERR_INVALID_REQUEST', err.message, { param });
          }
          throw err;
        }
        ctx.accounting.credited(accountId, amountNano);
        await recordCredits(deps, result.entry);
        reply.status(201);
        return {
          data: { ...ledgerView(result.entry), balance: nanoToUsd(result.balanceNano - ctx.accounting.pendingFor(accountId)) },
        };
      });

      admin.get<IdParams>('/accounts/:id/ledger', async (request) => {
        const query = parseInput(ledgerQuery, request.query);
        const id = request.params.id;
        await existing(id);
        const entries = await deps.repos.ledger.entries(id, {
          limit: query.limit ?? 100,
          ...(query.before !== undefined ? { before: query.before } : {}),
        });
        return { data: entries.map(ledgerView) };
      });

      admin.post<IdParams>('/accounts/:id/keys', async (request, reply) => {
        const input = parseInput(keys.create, request.body);
        const account = await existing(request.params.id);
        const created = await createKey(ctx, deps, account.id, input, ADMIN_ACTOR);
        reply.status(201);
        return created;
      });

      admin.get('/usage', async (request, reply) => {
        const query = parseInput(usageQuery, request.query);
        let range: { from: number; to: number };
        try {
          range = dayRange(query.from, query.to);
        } catch (err) {
          if (!(err instanceof DayRangeError)) throw err;
          throw new GatewayError('MR_ERR_INVALID_REQUEST', `${err.message}.`, { param: err.field });
        }
        if (query.account !== undefined && !(await deps.repos.accounts.findAccountById(query.account))) {
          throw new GatewayError('MR_ERR_NOT_FOUND', 'No account with this id.', { param: 'account' });
        }
        const rows = await deps.repos.usage.report({
          from: range.from,
          to: range.to,
          ...(query.account !== undefined ? { accountId: query.account } : {}),
        });
        if (query.format === 'csv') {
          reply.type('text/csv; charset=utf-8');
          return usageCsv(rows);
        }
        return { data: rows.map(usageRowView) };
      });
    },
    { prefix: '/admin/v1' },
  );
}
