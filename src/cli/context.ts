/**
 * What every `maxrouter` subcommand receives from `src/cli/main.ts`, plus the helpers they
 * share: flag parsing that turns mistakes into exit code 2, and open → migrate → work → close.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KEY_CACHE_TTL_MS } from '../auth/authenticator.js';
import { AccountsRepo, type Account } from '../storage/accounts-repo.js';
import { openDatabase, type Database } from '../storage/database.js';
import { migrateToLatest } from '../storage/migrations.js';

export interface CliContext {
  /** The config's `database` URL. */
  databaseUrl: string;
  /** The config's `dataDir` (server secret, default SQLite file). */
  dataDir: string;
  /** The config's `secret`, when set. */
  secret?: string;
  /** Model ids of the configured catalog, which `keys create --models` must name (unchecked when absent). */
  models?: ReadonlySet<string>;
  /** The deployment's billing mode for accounts without their own (shown by `accounts list`). */
  defaultBillingMode?: 'credits' | 'track';
  /** Writes to standard output / error; the strings carry their own newlines. */
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/** Exit codes: 0 success, 1 failure (not found, conflict, database error), 2 usage error. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad command line: the command prints the message and its usage, then exits 2. */
export class CliUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliUsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** `node:util` parseArgs, strict; unknown flags and missing values become `CliUsageError`. */
export function parseFlags<O extends Options>(
  argv: string[],
  options: O,
  maxPositionals: number,
) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new CliUsageError(err instanceof Error ? err.message : String(err));
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new CliUsageError(`Unexpected argument '${parsed.positionals[maxPositionals]}'`);
  }
  return parsed;
}

/**
 * Opens the configured database, applies pending migrations (unless `migrate: false`), runs
 * `work`, and closes the database whatever happens.
 */
export async function withDatabase<T>(
  ctx: CliContext,
  work: (database: Database) => Promise<T>,
  opts: { migrate?: boolean } = {},
): Promise<T> {
  const database = await openDatabase(ctx.databaseUrl, { dataDir: ctx.dataDir });
  try {
    if (opts.migrate !== false) await migrateToLatest(database);
    return await work(database);
  } finally {
    await database.close();
  }
}

/** Reports an error the way every command does and returns the exit code. */
export function reportError(ctx: CliContext, err: unknown, usage: string): number {
  if (err instanceof CliUsageError) {
    ctx.stderr(`error: ${err.message}\n\n${usage}`);
    return EXIT_USAGE;
  }
  ctx.stderr(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT_FAILURE;
}

/**
 * Told after a change that running servers learn of only when their cached key record expires
 * (`verb`: "reject it", "apply it").
 */
export function cacheNote(verb: string): string {
  return `running servers ${verb} within ${KEY_CACHE_TTL_MS / 1000} seconds (their key cache lifetime)\n`;
}

/** Epoch ms as `2025-01-31 12:34:56Z`. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** Aligned columns separated by two spaces, one line per row. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd() + '\n';
  return [header, ...rows].map(line).join('');
}

/** The account with this email, or an error message and exit 1 (with the hint to create it). */
export async function findAccount(ctx: CliContext, db: Database['db'], email: string): Promise<Account | undefined> {
  const account = await new AccountsRepo(db).findAccountByEmail(email);
  if (!account) {
    ctx.stderr(`error: no account with email ${printable(email)}; create it with: maxrouter accounts create --email ${printable(email)}\n`);
  }
  return account;
}

/** Replaces control characters so user-supplied text cannot drive the terminal. */
export function printable(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** A subcommand: the arguments after its name. */
export type Subcommand = (argv: string[], ctx: CliContext) => Promise<number>;

/**
 * `maxrouter <command> <subcommand> …`: runs the named subcommand, prints `usage` for `help`,
 * `--help` or `-h`, and reports a missing or unknown subcommand (or any error) with `usage`.
 */
export async function runSubcommand(argv: string[], ctx: CliContext, usage: string, subcommands: Record<string, Subcommand>): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === 'help' || sub === '--help' || sub === '-h') {
      ctx.stdout(usage);
      return EXIT_OK;
    }
    const run = sub !== undefined && Object.hasOwn(subcommands, sub) ? subcommands[sub] : undefined;
    if (run === undefined) throw new CliUsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`);
    return await run(rest, ctx);
  } catch (err) {
    return reportError(ctx, err, usage);
  }
}
