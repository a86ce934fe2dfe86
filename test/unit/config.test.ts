import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfigFile, ConfigError, defaultConfig, loadConfig } from '../../src/config/load-config.js';
import { main } from '../../src/cli/main.js';

const dir = mkdtempSync(join(tmpdir(), 'mr-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const GOOD = `
listen: { host: 127.0.0.1, port: 9999 }
database: sqlite:./data/test.db
providers:
  - id: openai
    type: openai
    baseUrl: https://api.openai.com/v1
    apiKey: \${OPENAI_API_KEY}
  - id: local
    type: openai-compatible
    baseUrl: \${LOCAL_URL:-http://127.0.0.1:11434/v1}
models:
  - id: openai/gpt-4o-mini
    endpoints:
      - provider: openai
        model: gpt-4o-mini
        pricing: { input: 0.15, output: 0.60 }
  - id: local/llama
    endpoints: [{ provider: local, model: llama3 }]
`;

describe('configuration', () => {
  it('loads the documented shape and interpolates ${VAR} and ${VAR:-default}', () => {
    const cfg = loadConfig(file('good.yaml', GOOD), { OPENAI_API_KEY: 'sk-test' });
    expect(cfg.listen).toEqual({ host: '127.0.0.1', port: 9999 });
    expect(cfg.providers[0]).toMatchObject({ id: 'openai', type: 'openai', apiKey: 'sk-test' });
    expect(cfg.providers[1]!.baseUrl).toBe('http://127.0.0.1:11434/v1');
    expect(cfg.models[0]!.endpoints[0]!.pricing).toEqual({ input: 0.15, output: 0.6 });
  });

  it('accepts JSON, which is valid YAML', () => {
    const json = JSON.stringify({ providers: [{ id: 'p', type: 'anthropic', apiKey: 'k' }], models: [{ id: 'a/b', endpoints: [{ provider: 'p', model: 'm' }] }] });
    expect(loadConfig(file('c.json', json), {}).providers[0]!.type).toBe('anthropic');
  });

  it('reports every problem with its path and reason', () => {
    const bad = `
listen: { port: 99999 }
database: mysql://x
providers:
  - id: a
    type: openai-compatible
  - id: a
    type: grok
    apiKey: \${MISSING_KEY}
models:
  - id: m
    endpoints: [{ provider: nope, model: x }]
  - id: m2
    endpoints: []
surprise: true
`;
    const problems = checkConfigFile(file('bad.yaml', bad), {});
    const paths = problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'providers[1].apiKey',
        'listen.port',
        'database',
        'providers[1].type',
        'models[1].endpoints',
      ]),
    );
    expect(problems.find((p) => p.path === 'providers[1].apiKey')!.message).toBe('environment variable MISSING_KEY is not set');
    expect(problems.some((p) => p.message.includes('surprise'))).toBe(true);
    expect(() => loadConfig(join(dir, 'bad.yaml'), {})).toThrow(ConfigError);
  });

  it('reports unknown provider references, duplicate ids and a missing baseUrl', () => {
    const problems = checkConfigFile(
      file(
        'refs.yaml',
        `providers:
  - { id: a, type: openai-compatible }
  - { id: a, type: openai }
models:
  - { id: m, endpoints: [{ provider: nope, model: x }] }`,
      ),
      {},
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'providers[0].baseUrl', message: 'required for type openai-compatible' },
        { path: 'providers[1].id', message: "duplicate provider id 'a'" },
        { path: 'models[0].endpoints[0].provider', message: "unknown provider 'nope' (declared: a)" },
      ]),
    );
  });

  it('reports those cross-references in the same run as problems of other fields (one check-config run lists everything)', () => {
    const problems = checkConfigFile(
      file(
        'mixed.yaml',
        `listen: { port: 99999 }
providers:
  - { id: a, type: openai }
  - { id: a, type: nope }
models:
  - { id: m, endpoints: [{ provider: missing, model: x, pricing: { input: -1 } }] }
  - { id: m, endpoints: [] }`,
      ),
      {},
    );
    expect(problems.map((p) => p.path).sort()).toEqual(
      [
        'listen.port',
        'providers[1].type',
        'models[0].endpoints[0].pricing.input',
        'models[1].endpoints',
        'providers[1].id',
        'models[0].endpoints[0].provider',
        'models[1].id',
      ].sort(),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'providers[1].id', message: "duplicate provider id 'a'" },
        { path: 'models[0].endpoints[0].provider', message: "unknown provider 'missing' (declared: a)" },
        { path: 'models[1].id', message: "duplicate model id 'm'" },
      ]),
    );
  });

  it('reports YAML syntax errors with a line number', () => {
    const problems = checkConfigFile(file('syntax.yaml', 'listen: {\n  port: [1,\n'), {});
    expect(problems[0]!.path).toMatch(/^line \d+/);
  });

  it('without a file, enables providers from the environment with the bundled catalog', () => {
    const none = defaultConfig({});
    expect(none.providers).toEqual([]);
    expect(none.models).toEqual([]);
    expect(none.database).toBe('sqlite:./data/maxrouter.db');
    expect(none.listen).toEqual({ host: '127.0.0.1', port: 8787 });
    const some = defaultConfig({ ANTHROPIC_API_KEY: 'a', GEMINI_API_KEY: 'g' });
    expect(some.providers.map((p) => p.id).sort()).toEqual(['anthropic', 'gemini']);
    expect(some.models.length).toBeGreaterThan(0);
    expect(some.models.every((m) => m.id.startsWith('anthropic/') || m.id.startsWith('google/'))).toBe(true);
  });

  it('maxrouter check-config prints OK or each problem and exits accordingly', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s), env: { OPENAI_API_KEY: 'x' } };
    expect(await main(['check-config', '--config', join(dir, 'good.yaml')], io)).toBe(0);
    expect(out.join('')).toContain('OK');
    expect(await main(['check-config', '--config', join(dir, 'refs.yaml')], io)).toBe(1);
    expect(err.join('')).toContain("models[0].endpoints[0].provider: unknown provider 'nope'");
  });

  it('serve and check-config refuse any argument but --config (a misspelt option never starts a gateway on the defaults)', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s), env: {} };
    // Would listen on 127.0.0.1:8787 with the defaults if the argument were ignored: it returns 2 at once.
    expect(await main(['serve', '--confg', join(dir, 'good.yaml')], io)).toBe(2);
    expect(err.join('')).toContain("error: 'serve' takes no argument but --config FILE, got '--confg'");
    expect(err.join('')).toContain('Usage: maxrouter');
    err.length = 0;
    expect(await main(['check-config', '--config', join(dir, 'good.yaml'), 'extra\u001b[31m'], io)).toBe(2);
    expect(err.join('')).toContain("got 'extra?[31m'");
    expect(out.join('')).not.toContain('OK');
    expect(await main(['serve', '--help'], io)).toBe(0);
    expect(out.join('')).toContain('Usage: maxrouter');
  });
});
