/**
 * `maxrouter keys create|list|revoke`. `create` prints only the raw key (plus a newline) on
 * stdout, so `KEY=$(maxrouter keys create --email …)` works; everything else goes to stderr.
 * No command ever prints a key hash, and the key itself is printed only by `create`, once.
 */
import { generateApiKey, generateKeyId, hashApiKey, last4, maskedKey } from '../auth/api-key.js';
import { loadOrCreateSecret } from '../auth/secret.js';
import { AccountsRepo } from '../storage/accounts-repo.js';
import { KeysRepo } from '../storage/keys-repo.js';
import {
  type CliContext,
  CliUsageError,
  EXIT_FAILURE,
  EXIT_OK,
  formatTable,
  formatTime,
  parseFlags,
  printable,
  reportError,
  withDatabase,
} from './context.js';

export const KEYS_USAGE = `Usage:
  maxrouter keys create --email EMAIL [--name NAME]   create a key; prints only the key, once
  maxrouter keys list --email EMAIL                    list an account's keys (never the key itself)
  maxrouter keys revoke KEY_ID                         revoke a key
`;

const MAX_NAME_LENGTH = 100;

export async function runKeys(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'help':
      case '--help':
      case '-h':
        ctx.stdout(KEYS_USAGE);
        return EXIT_OK;
      case 'create':
        return await create(rest, ctx);
      case 'list':
        return await list(rest, ctx);
      case 'revoke':
        return await revoke(rest, ctx);
      default:
        throw new CliUsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`);
    }
  } catch (err) {
    return reportError(ctx, err, KEYS_USAGE);
  }
}

function noAccount(ctx: CliContext, email: string): number {
  ctx.stderr(`error: no account with email ${email}; create it with: maxrouter accounts create --email ${email}\n`);
  return EXIT_FAILURE;
}

async function create(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(
    argv,
    { email: { type: 'string' }, name: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
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
  return withDatabase(ctx, async ({ db }) => {
    const account = await new AccountsRepo(db).findAccountByEmail(email);
    if (!account) return noAccount(ctx, email);
    const secret = await loadOrCreateSecret({ secret: ctx.secret, dataDir: ctx.dataDir });
    const key = generateApiKey();
    const id = generateKeyId();
    await new KeysRepo(db).insertKey({
      id,
      accountId: account.id,
      name: name || null,
      keyHash: hashApiKey(key, secret),
      last4: last4(key),
    });
    ctx.stdout(key + '\n');
    ctx.stderr(`created key ${id} for ${account.email}; it is shown only this once\n`);
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
    const account = await new AccountsRepo(db).findAccountByEmail(email);
    if (!account) return noAccount(ctx, email);
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
    await keys.revokeKey(id);
    ctx.stdout(`revoked key ${before.id}\n`);
    // Servers cache key records; another process learns of the revoke when its entry expires.
    ctx.stderr('running servers reject it within 30 seconds (their key cache lifetime)\n');
    return EXIT_OK;
  });
}
