/** `maxrouter usage report`: usage per account, UTC day and model (the admin API's report). */
import { formatUsd } from '../billing/money.js';
import { DayRangeError, dayRange, usageCsv, usageRowView } from '../server/admin-api.js';
import { AccountsRepo } from '../storage/accounts-repo.js';
import { UsageRepo } from '../storage/usage-repo.js';
import {
  type CliContext,
  CliUsageError,
  EXIT_FAILURE,
  EXIT_OK,
  findAccount,
  formatTable,
  parseFlags,
  printable,
  runSubcommand,
  withDatabase,
} from './context.js';

export const USAGE_USAGE = `Usage:
  maxrouter usage report [--email EMAIL] --from YYYY-MM-DD --to YYYY-MM-DD [--format table|json|csv]
      requests, tokens and cost per account, UTC day and model, from --from to --to (both included)
`;

export function runUsage(argv: string[], ctx: CliContext): Promise<number> {
  return runSubcommand(argv, ctx, USAGE_USAGE, { report });
}

async function report(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(
    argv,
    {
      email: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      format: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    0,
  );
  if (values.help) {
    ctx.stdout(USAGE_USAGE);
    return EXIT_OK;
  }
  if (values.from === undefined) throw new CliUsageError('--from is required');
  if (values.to === undefined) throw new CliUsageError('--to is required');
  const format = values.format ?? 'table';
  if (format !== 'table' && format !== 'json' && format !== 'csv') throw new CliUsageError("--format must be 'table', 'json' or 'csv'");
  let range: { from: number; to: number };
  try {
    range = dayRange(values.from, values.to);
  } catch (err) {
    // The API's parameter names are the CLI's options: `to must not be before from` → `--to … --from`.
    if (err instanceof DayRangeError) throw new CliUsageError(err.message.replace(/\b(from|to)\b/g, '--$1'));
    throw err;
  }
  const email = values.email;
  return withDatabase(ctx, async ({ db }) => {
    let accountId: string | undefined;
    if (email !== undefined) {
      const account = await findAccount(ctx, db, email);
      if (!account) return EXIT_FAILURE;
      accountId = account.id;
    }
    const rows = await new UsageRepo(db).report({ ...range, ...(accountId !== undefined ? { accountId } : {}) });
    if (format === 'csv') {
      ctx.stdout(usageCsv(rows));
      return EXIT_OK;
    }
    if (format === 'json') {
      ctx.stdout(JSON.stringify({ data: rows.map(usageRowView) }, null, 2) + '\n');
      return EXIT_OK;
    }
    const emails = new Map((await new AccountsRepo(db).listAccounts()).map((a) => [a.id, a.email]));
    const table = rows.map((r) => [
      r.day,
      printable(emails.get(r.accountId) ?? r.accountId),
      printable(r.keyId),
      printable(r.model),
      String(r.requests),
      String(r.promptTokens),
      String(r.completionTokens),
      String(r.cachedTokens),
      String(r.reasoningTokens),
      formatUsd(r.costNano),
    ]);
    ctx.stdout(formatTable(['DATE', 'ACCOUNT', 'KEY', 'MODEL', 'REQUESTS', 'PROMPT', 'COMPLETION', 'CACHED', 'REASONING', 'USD'], table));
    if (rows.length === 0) ctx.stderr(`no usage from ${values.from} to ${values.to}\n`);
    return EXIT_OK;
  });
}
