/**
 * `maxrouter accounts create|list|disable|enable|billing`. Every change writes an `audit_log` row
 * (actor `cli`) in the same transaction.
 */
import { formatUsd } from '../billing/money.js';
import { AccountsRepo } from '../storage/accounts-repo.js';
import { AuditRepo, CLI_ACTOR } from '../storage/audit-repo.js';
import { DuplicateEmailError } from '../storage/errors.js';
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

export const ACCOUNTS_USAGE = `Usage:
  maxrouter accounts create --email EMAIL                          create an account; prints its id and email
  maxrouter accounts list                                          list accounts with status, billing mode and balance
  maxrouter accounts disable --email EMAIL                         refuse every key of the account
  maxrouter accounts enable --email EMAIL                          accept its keys again
  maxrouter accounts billing --email EMAIL --mode credits|track|default
                                                                   how the account pays (default: the config's billing.mode)
`;

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

export function runAccounts(argv: string[], ctx: CliContext): Promise<number> {
  return runSubcommand(argv, ctx, ACCOUNTS_USAGE, {
    create,
    list,
    billing,
    disable: (args, c) => setDisabled(args, c, true),
    enable: (args, c) => setDisabled(args, c, false),
  });
}

async function create(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(argv, { email: { type: 'string' }, ...HELP }, 0);
  if (values.help) {
    ctx.stdout(ACCOUNTS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  const email = values.email;
  return withDatabase(ctx, async ({ db }) => {
    try {
      const account = await new AuditRepo(db).transaction(async (tx) => {
        const created = await tx.accounts.createAccount(email);
        await tx.audit.record({ actor: CLI_ACTOR, action: 'account.created', accountId: created.id });
        return created;
      });
      ctx.stdout(`${account.id} ${account.email}\n`);
      return EXIT_OK;
    } catch (err) {
      if (err instanceof DuplicateEmailError) {
        ctx.stderr(`error: an account with email ${err.email} already exists\n`);
        return EXIT_FAILURE;
      }
      throw err;
    }
  });
}

async function list(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(argv, HELP, 0);
  if (values.help) {
    ctx.stdout(ACCOUNTS_USAGE);
    return EXIT_OK;
  }
  return withDatabase(ctx, async ({ db }) => {
    const accounts = await new AccountsRepo(db).listAccounts();
    const fallback = ctx.defaultBillingMode ? `default (${ctx.defaultBillingMode})` : 'default';
    const rows = accounts.map((a) => [
      a.id,
      printable(a.email),
      formatTime(a.createdAt),
      a.disabled ? 'disabled' : 'active',
      a.billingMode ?? fallback,
      `$${formatUsd(a.balanceNano)}`,
    ]);
    ctx.stdout(formatTable(['ID', 'EMAIL', 'CREATED', 'STATUS', 'BILLING', 'BALANCE'], rows));
    if (accounts.length === 0) ctx.stderr('no accounts; create one with: maxrouter accounts create --email EMAIL\n');
    return EXIT_OK;
  });
}

async function setDisabled(argv: string[], ctx: CliContext, disabled: boolean): Promise<number> {
  const { values } = parseFlags(argv, { email: { type: 'string' }, ...HELP }, 0);
  if (values.help) {
    ctx.stdout(ACCOUNTS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  const email = values.email;
  const verb = disabled ? 'disabled' : 'enabled';
  return withDatabase(ctx, async ({ db }) => {
    const account = await findAccount(ctx, db, email);
    if (!account) return EXIT_FAILURE;
    if (account.disabled === disabled) {
      ctx.stdout(`account ${account.id} (${account.email}) is already ${verb}\n`);
      return EXIT_OK;
    }
    await new AuditRepo(db).transaction(async (tx) => {
      await tx.accounts.setDisabled(account.id, disabled);
      await tx.audit.record({ actor: CLI_ACTOR, action: disabled ? 'account.disabled' : 'account.enabled', accountId: account.id });
    });
    ctx.stdout(`${verb} account ${account.id} (${account.email})\n`);
    ctx.stderr(cacheNote('apply it'));
    return EXIT_OK;
  });
}

async function billing(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(argv, { email: { type: 'string' }, mode: { type: 'string' }, ...HELP }, 0);
  if (values.help) {
    ctx.stdout(ACCOUNTS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  const mode = values.mode;
  if (mode !== 'credits' && mode !== 'track' && mode !== 'default') {
    throw new CliUsageError(mode === undefined ? '--mode is required' : "--mode must be 'credits', 'track' or 'default'");
  }
  const email = values.email;
  return withDatabase(ctx, async ({ db }) => {
    const account = await findAccount(ctx, db, email);
    if (!account) return EXIT_FAILURE;
    const next = mode === 'default' ? null : mode;
    // Setting the mode it already has changes nothing and is not recorded.
    if (next !== account.billingMode) {
      await new AuditRepo(db).transaction(async (tx) => {
        await tx.accounts.setBillingMode(account.id, next);
        await tx.audit.record({ actor: CLI_ACTOR, action: 'account.billing_mode_changed', accountId: account.id });
      });
    }
    const shown = mode === 'default' && ctx.defaultBillingMode ? `default (${ctx.defaultBillingMode})` : mode;
    ctx.stdout(`account ${account.id} (${account.email}) billing mode: ${shown}\n`);
    ctx.stderr(cacheNote('apply it'));
    return EXIT_OK;
  });
}
