/**
 * Loading the configuration: YAML file (JSON is valid YAML) → `${VAR}` interpolation →
 * schema validation. Without a file, providers come from OPENAI_API_KEY, ANTHROPIC_API_KEY and
 * GEMINI_API_KEY with the bundled model catalog.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { BUNDLED_MODELS, bundledProviders, bundledModelsFor } from './bundled-catalog.js';
import { configSchema, crossReferenceIssues, type Config } from './schema.js';

/** One problem found in a configuration, with the path to the offending value. */
export interface ConfigProblem {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(source: string, problems: ConfigProblem[]) {
    super(`${source}: invalid configuration\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out || '(root)';
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string value (not in keys). A variable that
 * is unset and has no default is a problem reported with its path.
 */
export function interpolateEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: ConfigProblem[],
  path: PropertyKey[] = [],
): unknown {
  if (typeof value === 'string') {
    return value.replace(VAR, (_m, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      problems.push({ path: formatPath(path), message: `environment variable ${name} is not set` });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, problems, [...path, i]));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateEnv(v, env, problems, [...path, k]);
    return out;
  }
  return value;
}

/** Validates a raw (already interpolated) object; returns the config or every problem. */
export function validateConfig(raw: unknown): { config?: Config; problems: ConfigProblem[] } {
  const parsed = configSchema.safeParse(raw ?? {});
  if (parsed.success) return { config: parsed.data, problems: [] };
  const problems = parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
  // The schema's cross-reference check is skipped when a field's value is invalid (it still runs
  // beside issues such as unrecognised keys, hence `seen`): add its problems here, so one run of
  // check-config lists them all.
  const seen = new Set(problems.map((p) => `${p.path}\n${p.message}`));
  for (const issue of crossReferenceIssues(raw)) {
    const p = { path: formatPath(issue.path), message: issue.message };
    if (!seen.has(`${p.path}\n${p.message}`)) problems.push(p);
  }
  return { problems };
}

/** Parses YAML text; syntax errors become problems with line numbers. */
export function parseConfigText(text: string): { raw?: unknown; problems: ConfigProblem[] } {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      problems: doc.errors.map((e) => ({
        path: e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(file)',
        message: e.message.split('\n')[0] ?? e.message,
      })),
    };
  }
  return { raw: doc.toJS(), problems: [] };
}

/** Every problem of a config file, or none. Used by `maxrouter check-config`. */
export function checkConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): ConfigProblem[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return [{ path: '(file)', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }];
  }
  const { raw, problems } = parseConfigText(text);
  if (problems.length) return problems;
  const envProblems: ConfigProblem[] = [];
  const interpolated = interpolateEnv(raw, env, envProblems);
  return [...envProblems, ...validateConfig(interpolated).problems];
}

/** Loads the config from a file, or the env-based default when `path` is undefined. */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  if (path === undefined) return defaultConfig(env);
  const problems = checkConfigFile(path, env);
  if (problems.length) throw new ConfigError(path, problems);
  const { raw } = parseConfigText(readFileSync(path, 'utf8'));
  const { config } = validateConfig(interpolateEnv(raw, env, []));
  return config!;
}

/** No file: providers from the environment, models from the bundled catalog. */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const providers = bundledProviders(env);
  const enabled = new Set(providers.map((p) => p.id));
  const raw = {
    ...(env.MAXROUTER_HOST || env.MAXROUTER_PORT
      ? { listen: { host: env.MAXROUTER_HOST ?? '127.0.0.1', port: Number(env.MAXROUTER_PORT ?? 8787) } }
      : {}),
    ...(env.MAXROUTER_DATABASE ? { database: env.MAXROUTER_DATABASE } : {}),
    ...(env.MAXROUTER_SECRET ? { secret: env.MAXROUTER_SECRET } : {}),
    providers,
    models: bundledModelsFor(enabled),
  };
  const { config, problems } = validateConfig(raw);
  if (!config) throw new ConfigError('environment', problems);
  return config;
}

export { BUNDLED_MODELS };
