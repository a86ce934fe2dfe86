/** `maxrouter migrate`: applies pending database migrations and prints what it applied. */
import { migrateToLatest, migrationStatus } from '../storage/migrations.js';
import { type CliContext, EXIT_OK, parseFlags, reportError, withDatabase } from './context.js';

export const MIGRATE_USAGE = `Usage:
  maxrouter migrate            apply pending database migrations
  maxrouter migrate --status   list migrations and whether each is applied
`;

export async function runMigrate(argv: string[], ctx: CliContext): Promise<number> {
  try {
    const { values } = parseFlags(argv, { status: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, 0);
    if (values.help) {
      ctx.stdout(MIGRATE_USAGE);
      return EXIT_OK;
    }
    return await withDatabase(
      ctx,
      async (database) => {
        if (values.status) {
          for (const m of await migrationStatus(database)) ctx.stdout(`${m.applied ? 'applied' : 'pending'}  ${m.name}\n`);
          return EXIT_OK;
        }
        const applied = await migrateToLatest(database);
        if (applied.length === 0) ctx.stdout('database is up to date\n');
        for (const name of applied) ctx.stdout(`applied ${name}\n`);
        return EXIT_OK;
      },
      { migrate: false },
    );
  } catch (err) {
    return reportError(ctx, err, MIGRATE_USAGE);
  }
}
