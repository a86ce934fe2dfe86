/**
 * The `maxrouter` command: serve, check-config, migrate, accounts, keys, credits, usage.
 * `--config FILE` (or MAXROUTER_CONFIG) names the YAML config; without it the gateway runs on
 * its embedded defaults (SQLite under ./data, providers from *_API_KEY variables).
 */
import { readFileSync } from 'node:fs';
import { BUNDLED_MODELS, ConfigError, checkConfigFile, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { printable, type CliContext } from './context.js';

const USAGE = `Usage: maxrouter <command> [--config FILE]

Commands:
  serve                                start the gateway (default: http://127.0.0.1:8787)
  check-config --config FILE           report every problem in a config file
  migrate                              apply pending database migrations
  accounts create --email E            create an account
  accounts list                        list accounts (status, billing mode, balance)
  accounts disable|enable --email E    refuse or accept again every key of an account
  accounts billing --email E --mode credits|track|default
                                       how an account pays
  keys create --email E [--name N] [--management] [--limit USD] [--limit-reset daily|weekly|monthly]
              [--expires ISO] [--models A,B]
                                       create an API key (printed once, alone on stdout)
  keys list --email E                  list an account's keys (never the secret)
  keys revoke ID                       revoke a key
  credits add --email E --usd N [--reason R]
                                       add credit; prints the new balance
  credits show --email E               balance, credits, usage and the latest ledger entries
  usage report [--email E] --from D --to D [--format table|json|csv]
                                       usage per account, UTC day and model

Options:
  --config FILE   YAML (or JSON) configuration; default: $MAXROUTER_CONFIG, else built-in defaults
  --help          show this help
  --version       show the version
`;

/** Removes `--config FILE` / `--config=FILE` from argv wherever it stands. */
export function extractConfigFlag(argv: string[]): { configPath: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config' || a === '-c') {
      configPath = argv[++i];
      if (configPath === undefined) throw new Error('--config needs a file path');
    } else if (a.startsWith('--config=')) {
      configPath = a.slice('--config='.length);
    } else {
      rest.push(a);
    }
  }
  return { configPath, rest };
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export interface MainIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

const defaultIO: MainIO = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  env: process.env,
};

export async function main(argv: string[], io: MainIO = defaultIO): Promise<number> {
  let parsed;
  try {
    parsed = extractConfigFlag(argv);
  } catch (err) {
    io.stderr(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const configPath = parsed.configPath ?? (io.env.MAXROUTER_CONFIG || undefined);
  const [command, ...args] = parsed.rest;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    io.stdout(USAGE);
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-v') {
    io.stdout(`${version()}\n`);
    return 0;
  }
  // `serve` and `check-config` take nothing but --config: a misspelt option (`--confg`) must not
  // start a gateway on the defaults, nor pass a check it never ran.
  if ((command === 'serve' || command === 'check-config') && args.length > 0) {
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout(USAGE);
      return 0;
    }
    io.stderr(`error: '${command}' takes no argument but --config FILE, got '${printable(args[0]!.slice(0, 60))}'\n\n${USAGE}`);
    return 2;
  }
  if (command === 'check-config') {
    if (!configPath) {
      io.stderr('error: check-config needs --config FILE\n');
      return 2;
    }
    const problems = checkConfigFile(configPath, io.env);
    if (!problems.length) {
      io.stdout(`${configPath}: OK\n`);
      return 0;
    }
    io.stderr(`${configPath}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n`);
    for (const p of problems) io.stderr(`  ${p.path}: ${p.message}\n`);
    return 1;
  }

  let config: Config;
  try {
    config = loadConfig(configPath, io.env);
  } catch (err) {
    io.stderr(err instanceof ConfigError ? `${err.message}\n` : `error: ${(err as Error).message}\n`);
    return 1;
  }
  const ctx: CliContext = {
    databaseUrl: config.database,
    dataDir: config.dataDir,
    // Without a config file the served catalog depends on which *_API_KEY the server has: accept any bundled model.
    models: new Set([...config.models, ...(configPath ? [] : BUNDLED_MODELS)].map((m) => m.id)),
    defaultBillingMode: config.billing.mode,
    stdout: io.stdout,
    stderr: io.stderr,
  };
  if (config.secret) ctx.secret = config.secret;

  switch (command) {
    case 'serve':
      return serve(config, io, configPath);
    case 'migrate':
      return (await import('./migrate-command.js')).runMigrate(args, ctx);
    case 'accounts':
      return (await import('./accounts-command.js')).runAccounts(args, ctx);
    case 'keys':
      return (await import('./keys-command.js')).runKeys(args, ctx);
    case 'credits':
      return (await import('./credits-command.js')).runCredits(args, ctx);
    case 'usage':
      return (await import('./usage-command.js')).runUsage(args, ctx);
    default:
      io.stderr(`error: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

async function serve(config: Config, io: MainIO, configPath: string | undefined): Promise<number> {
  const { startGateway } = await import('../server/start.js');
  const gw = await startGateway(config);
  const models = gw.catalog.models.size;
  const providers = gw.catalog.providers.size;
  gw.logger.info({ url: gw.url, providers, models, config: configPath ?? 'defaults' }, 'maxrouter listening');
  gw.logger.flush(); // the log is buffered; the start-up line should not wait for traffic
  if (providers === 0) {
    io.stderr(
      'maxrouter: no providers configured. Set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, ' +
        'or pass --config FILE (see README).\n',
    );
  }
  // The first SIGTERM/SIGINT drains (see RunningGateway.stop): exit 0 once in-flight requests
  // finished or were ended at `shutdown.graceMs` and usage is written. A second one exits at once
  // (128 + signal number) after a best-effort usage flush.
  return new Promise<number>((resolve) => {
    let draining = false;
    let stopped = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopped) return;
      if (draining) {
        gw.logger.warn({ signal }, 'second signal: exiting without waiting for in-flight requests');
        void gw.abort().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
        return;
      }
      draining = true;
      gw.stop({ signal })
        .then(
          () => 0,
          (err: unknown) => {
            gw.logger.error({ errorName: (err as Error)?.name }, 'shutdown failed');
            gw.logger.flush();
            return 1;
          },
        )
        .then((code) => {
          stopped = true;
          // Everything is closed; should a stray handle still hold the event loop, do not hang until SIGKILL.
          setTimeout(() => {
            io.stderr('maxrouter: shut down, but something kept the process alive; exiting\n');
            process.exit(code);
          }, 5000).unref();
          resolve(code);
        });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
