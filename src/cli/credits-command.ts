/**
 * `maxrouter credits add|show`: an account's prepaid credits (the ledger). `add` writes an
 * `audit_log` row (actor `cli`) right after the ledger row, which commits in its own transaction.
 */
import { formatUsd, usdToNano } from '../billing/money.js';
import { AuditRepo, CLI_ACTOR } from '../storage/audit-repo.js';
import { InvalidFieldError } from '../storage/errors.js';
import { LedgerRepo } from '../storage/ledger-repo.js';
import { UsageRepo } from '../storage/usage-repo.js';
import {
  type CliContext,
  CliUsageError,
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

export const CREDITS_USAGE = `Usage:
  maxrouter credits add --email EMAIL --usd N [--reason TEXT] [--adjustment]
                                       add N USD of credit (prints the new balance); --adjustment for a
                                       correction, which may be negative (--usd=-5)
  maxrouter credits show --email EMAIL [--limit N]
                                       balance, credits, usage and the latest N ledger entries (default 10)
`;

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

export function runCredits(argv: string[], ctx: CliContext): Promise<number> {
  return runSubcommand(argv, ctx, CREDITS_USAGE, { add, show });
}

async function add(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(
    argv,
    { email: { type: 'string' }, usd: { type: 'string' }, reason: { type: 'string' }, adjustment: { type: 'boolean' }, ...HELP },
    0,
  );
  if (values.help) {
    ctx.stdout(CREDITS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  if (values.usd === undefined) throw new CliUsageError('--usd is required');
  const kind = values.adjustment ? 'adjustment' : 'topup';
  let amountNano: number;
  try {
    amountNano = usdToNano(values.usd, { allowNegative: kind === 'adjustment' });
  } catch {
    throw new CliUsageError(
      kind === 'topup'
        ? '--usd must be a positive amount of USD with at most 9 decimal places (use --adjustment to remove credit)'
        : '--usd must be a non-zero amount of USD with at most 9 decimal places',
    );
  }
  if (amountNano === 0) throw new CliUsageError('--usd must not be zero');
  const reason = values.reason ?? (kind === 'topup' ? 'top-up' : 'adjustment');
  const email = values.email;
  return withDatabase(ctx, async ({ db }) => {
    const account = await findAccount(ctx, db, email);
    if (!account) return EXIT_FAILURE;
    let result;
    try {
      result = await new LedgerRepo(db).append({ accountId: account.id, kind, amountNano, reason });
    } catch (err) {
      if (err instanceof InvalidFieldError && err.field === 'reason') throw new CliUsageError(`--reason: ${err.message}`);
      throw err;
    }
    // The ledger row committed in its own transaction; its audit row comes right after.
    let auditError: unknown;
    try {
      await new AuditRepo(db).record({
        actor: CLI_ACTOR,
        action: kind === 'adjustment' ? 'credits.adjusted' : 'credits.added',
        accountId: account.id,
        ledgerId: result.entry.id,
      });
    } catch (err) {
      auditError = err;
    }
    const verb = amountNano > 0 ? 'added' : 'removed';
    ctx.stdout(`${verb} $${formatUsd(Math.abs(amountNano))} (${kind}); balance of ${account.email}: $${formatUsd(result.balanceNano)}\n`);
    if (auditError !== undefined) {
      const reason = auditError instanceof Error ? auditError.message : String(auditError);
      ctx.stderr(`error: the ${kind} was applied (ledger entry ${result.entry.id}), but its audit-log row could not be written: ${reason}; do not repeat it\n`);
      return EXIT_FAILURE;
    }
    if ((account.billingMode ?? ctx.defaultBillingMode ?? 'track') !== 'credits') {
      ctx.stderr(`note: ${account.email} is not billed from its credits until its billing mode is credits (maxrouter accounts billing)\n`);
    }
    ctx.stderr('running servers see the new balance within billing.refreshMs (5 seconds by default)\n');
    return EXIT_OK;
  });
}

async function show(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(argv, { email: { type: 'string' }, limit: { type: 'string' }, ...HELP }, 0);
  if (values.help) {
    ctx.stdout(CREDITS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  const limit = values.limit === undefined ? 10 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 0 || limit > 1000) throw new CliUsageError('--limit must be a whole number from 0 to 1000');
  const email = values.email;
  return withDatabase(ctx, async ({ db }) => {
    const account = await findAccount(ctx, db, email);
    if (!account) return EXIT_FAILURE;
    const ledger = new LedgerRepo(db);
    const [totals, usage, entries] = await Promise.all([
      ledger.totals(account.id),
      new UsageRepo(db).sumCost({ accountId: account.id }),
      limit > 0 ? ledger.entries(account.id, { limit }) : Promise.resolve([]),
    ]);
    if (!totals) {
      ctx.stderr(`error: account ${account.id} disappeared\n`);
      return EXIT_FAILURE;
    }
    const mode = account.billingMode ?? (ctx.defaultBillingMode ? `default (${ctx.defaultBillingMode})` : 'default');
    ctx.stdout(
      `account  ${account.id} ${account.email}\n` +
        `billing  ${mode}\n` +
        `balance  $${formatUsd(totals.balanceNano)}\n` +
        `credits  $${formatUsd(totals.balanceNano + totals.chargesNano)}\n` +
        `usage    $${formatUsd(usage)}\n`,
    );
    if (entries.length > 0) {
      ctx.stdout('\n');
      const rows = entries.map((e) => [formatTime(e.createdAt), e.kind, formatUsd(e.amountNano), printable(e.reason)]);
      ctx.stdout(formatTable(['CREATED', 'KIND', 'USD', 'REASON'], rows));
    }
    return EXIT_OK;
  });
}
