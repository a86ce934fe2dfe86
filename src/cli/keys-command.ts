/**
 * `maxrouter keys create|list|revoke`. `create` prints only the raw key (plus a newline) on
 * stdout, so `KEY=$(maxrouter keys create --email …)` works; everything else goes to stderr.
 * No command ever prints a key hash, and the key itself is printed only by `create`, once.
 * `create` and `revoke` write an `audit_log` row (actor `cli`) in the same transaction.
 */
import { generateApiKey, generateKeyId, hashApiKey, last4, maskedKey } from '../auth/api-key.js';
import { loadOrCreateSecret } from '../auth/secret.js';
import { usdToNano } from '../billing/money.js';
import { AuditRepo, CLI_ACTOR } from '../storage/audit-repo.js';
import { KeysRepo, MAX_ALLOWED_MODELS, MAX_MODEL_ID_LENGTH, type KeySettings } from '../storage/keys-repo.js';
import {
  type CliContext,
  CliUsageError,
  cacheNote,
  EXIT_FAILURE,
  EXIT_OK,
  findAccount,
  formatTable,
  formatTime,
  parseFlags,
  printable,
  runSubcommand,
  withDatabase,
} from './context.js';

export const KEYS_USAGE = `Usage:
  maxrouter keys create --email EMAIL [--name NAME]   create a key; prints only the key, once
      [--management]                                   a management key (manages the account's keys; calls no model)
      [--limit USD] [--limit-reset daily|weekly|monthly]
                                                       spend limit, per UTC day, ISO week or month (default: never resets)
      [--expires ISO]                                  refused from then on (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)
      [--models ID,ID]                                 the catalog models it may call (default: all)
      [--rpm N] [--tpm N] [--concurrency N]            its own rate limits (default: the configured limits.key)
  maxrouter keys list --email EMAIL                    list an account's keys (never the key itself)
  maxrouter keys revoke KEY_ID                         revoke a key
`;

const MAX_NAME_LENGTH = 100;

export function runKeys(argv: string[], ctx: CliContext): Promise<number> {
  return runSubcommand(argv, ctx, KEYS_USAGE, { create, list, revoke });
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/** The key settings from `keys create` flags; bad values are usage errors. */
function keySettings(
  values: {
    management?: boolean;
    limit?: string;
    'limit-reset'?: string;
    expires?: string;
    models?: string;
    rpm?: string;
    tpm?: string;
    concurrency?: string;
  },
  ctx: CliContext,
  now: number,
): KeySettings {
  const settings: KeySettings = { kind: values.management ? 'management' : 'inference' };
  if (values.limit !== undefined) {
    try {
      settings.spendLimitNano = usdToNano(values.limit);
    } catch {
      throw new CliUsageError('--limit must be an amount of USD ≥ 0 with at most 9 decimal places, e.g. 25 or 0.5');
    }
  }
  const reset = values['limit-reset'];
  if (reset !== undefined) {
    if (reset !== 'daily' && reset !== 'weekly' && reset !== 'monthly') {
      throw new CliUsageError("--limit-reset must be 'daily', 'weekly' or 'monthly'");
    }
    if (values.limit === undefined) throw new CliUsageError('--limit-reset needs --limit');
    settings.limitReset = reset;
  }
  if (values.expires !== undefined) {
    const text = values.expires;
    const t = ISO_DATE.test(text) || ISO_DATE_TIME.test(text) ? Date.parse(text) : NaN;
    if (!Number.isFinite(t)) throw new CliUsageError('--expires must be an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z');
    if (t <= now) throw new CliUsageError('--expires must be in the future');
    settings.expiresAt = t;
  }
  if (values.models !== undefined) {
    const ids = [...new Set(values.models.split(',').map((m) => m.trim()))];
    if (ids.some((m) => m === '' || m.length > MAX_MODEL_ID_LENGTH || printable(m) !== m) || ids.length > MAX_ALLOWED_MODELS) {
      throw new CliUsageError(`--models must be a comma-separated list of at most ${MAX_ALLOWED_MODELS} model ids`);
    }
    const unknown = ctx.models ? ids.filter((m) => !ctx.models!.has(m)) : [];
    if (unknown.length > 0) {
      throw new CliUsageError(
        `--models names ${unknown.length === 1 ? 'a model' : 'models'} not in the configured catalog: ${unknown.join(', ')} ` +
          '(pass the --config the server runs with)',
      );
    }
    settings.allowedModels = ids;
  }
  const rate = (flag: 'rpm' | 'tpm' | 'concurrency'): number | undefined => {
    const v = values[flag];
    if (v === undefined) return undefined;
    if (!/^[1-9]\d{0,9}$/.test(v)) throw new CliUsageError(`--${flag} must be a positive integer`);
    return Number(v);
  };
  const rpm = rate('rpm');
  const tpm = rate('tpm');
  const concurrency = rate('concurrency');
  if (rpm !== undefined || tpm !== undefined || concurrency !== undefined) {
    settings.rateLimits = {
      ...(rpm !== undefined ? { rpm } : {}),
      ...(tpm !== undefined ? { tpm } : {}),
      ...(concurrency !== undefined ? { concurrency } : {}),
    };
  }
  return settings;
}

async function create(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(
    argv,
    {
      email: { type: 'string' },
      name: { type: 'string' },
      management: { type: 'boolean' },
      limit: { type: 'string' },
      'limit-reset': { type: 'string' },
      expires: { type: 'string' },
      models: { type: 'string' },
      rpm: { type: 'string' },
      tpm: { type: 'string' },
      concurrency: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    0,
  );
  if (values.help) {
    ctx.stdout(KEYS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  const email = values.email;
  const name = values.name;
  if (name !== undefined && (name.length > MAX_NAME_LENGTH || printable(name) !== name)) {
    throw new CliUsageError(`--name must be at most ${MAX_NAME_LENGTH} characters, without control characters`);
  }
  const settings = keySettings(values, ctx, Date.now());
  return withDatabase(ctx, async ({ db }) => {
    const account = await findAccount(ctx, db, email);
    if (!account) return EXIT_FAILURE;
    const secret = await loadOrCreateSecret({ secret: ctx.secret, dataDir: ctx.dataDir });
    const key = generateApiKey();
    const id = generateKeyId();
    await new AuditRepo(db).transaction(async (tx) => {
      await tx.keys.insertKey({
        id,
        accountId: account.id,
        name: name || null,
        keyHash: hashApiKey(key, secret),
        last4: last4(key),
        ...settings,
      });
      await tx.audit.record({ actor: CLI_ACTOR, action: 'key.created', accountId: account.id, keyId: id });
    });
    ctx.stdout(key + '\n');
    const kind = settings.kind === 'management' ? 'management key' : 'key';
    ctx.stderr(`created ${kind} ${id} for ${account.email}; it is shown only this once\n`);
    if (account.disabled) ctx.stderr(`warning: account ${account.email} is disabled; its keys are rejected\n`);
    return EXIT_OK;
  });
}

async function list(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(argv, { email: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, 0);
  if (values.help) {
    ctx.stdout(KEYS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  const email = values.email;
  return withDatabase(ctx, async ({ db }) => {
    const account = await findAccount(ctx, db, email);
    if (!account) return EXIT_FAILURE;
    const keys = await new KeysRepo(db).listKeys(account.id);
    const rows = keys.map((k) => [
      k.id,
      k.name === null ? '-' : printable(k.name),
      maskedKey(k.last4),
      formatTime(k.createdAt),
      k.revokedAt === null ? '-' : formatTime(k.revokedAt),
    ]);
    ctx.stdout(formatTable(['ID', 'NAME', 'KEY', 'CREATED', 'REVOKED'], rows));
    if (keys.length === 0) ctx.stderr(`no keys for ${account.email}\n`);
    return EXIT_OK;
  });
}

async function revoke(argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(argv, { help: { type: 'boolean', short: 'h' } }, 1);
  if (values.help) {
    ctx.stdout(KEYS_USAGE);
    return EXIT_OK;
  }
  const id = positionals[0];
  if (!id) throw new CliUsageError('missing KEY_ID');
  return withDatabase(ctx, async ({ db }) => {
    const keys = new KeysRepo(db);
    const before = await keys.getKey(id);
    if (!before) {
      ctx.stderr(`error: no key with id ${printable(id)}\n`);
      return EXIT_FAILURE;
    }
    if (before.revokedAt !== null) {
      ctx.stdout(`key ${before.id} was already revoked at ${formatTime(before.revokedAt)}\n`);
      return EXIT_OK;
    }
    await new AuditRepo(db).transaction(async (tx) => {
      await tx.keys.revokeKey(before.id);
      await tx.audit.record({ actor: CLI_ACTOR, action: 'key.revoked', accountId: before.accountId, keyId: before.id });
    });
    ctx.stdout(`revoked key ${before.id}\n`);
    // Servers cache key records; another process learns of the revoke when its entry expires.
    ctx.stderr(cacheNote('reject it'));
    return EXIT_OK;
  });
}
