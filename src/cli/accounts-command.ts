/** `maxrouter accounts create --email EMAIL` */
import { AccountsRepo } from '../storage/accounts-repo.js';
import { DuplicateEmailError } from '../storage/errors.js';
import { type CliContext, CliUsageError, EXIT_FAILURE, EXIT_OK, parseFlags, reportError, withDatabase } from './context.js';

export const ACCOUNTS_USAGE = `Usage:
  maxrouter accounts create --email EMAIL   create an account; prints its id and email
`;

export async function runAccounts(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === 'help' || sub === '--help' || sub === '-h') {
      ctx.stdout(ACCOUNTS_USAGE);
      return EXIT_OK;
    }
    if (sub === 'create') return await create(rest, ctx);
    throw new CliUsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`);
  } catch (err) {
    return reportError(ctx, err, ACCOUNTS_USAGE);
  }
}

async function create(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseFlags(argv, { email: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, 0);
  if (values.help) {
    ctx.stdout(ACCOUNTS_USAGE);
    return EXIT_OK;
  }
  if (!values.email) throw new CliUsageError('--email is required');
  const email = values.email;
  return withDatabase(ctx, async ({ db }) => {
    try {
      const account = await new AccountsRepo(db).createAccount(email);
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
