import { mkdtemp, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSecret } from '../../src/auth/secret.js';

describe('loadOrCreateSecret', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mr-secret-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('creates <dataDir>/secret with mode 0600 in a 0700 directory', async () => {
    const dataDir = join(root, 'data', 'nested');
    const secret = await loadOrCreateSecret({ dataDir });
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes base64url
    const file = join(dataDir, 'secret');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect((await readFile(file, 'utf8')).trim()).toBe(secret);
  });

  it('reuses the existing file', async () => {
    const a = await loadOrCreateSecret({ dataDir: root });
    const b = await loadOrCreateSecret({ dataDir: root });
    expect(b).toBe(a);
  });

  it('concurrent first calls agree on one secret', async () => {
    const all = await Promise.all(Array.from({ length: 5 }, () => loadOrCreateSecret({ dataDir: root })));
    expect(new Set(all).size).toBe(1);
  });

  it('the configured secret wins and no file is written', async () => {
    const configured = 'c'.repeat(40);
    expect(await loadOrCreateSecret({ secret: configured, dataDir: root })).toBe(configured);
    await expect(stat(join(root, 'secret'))).rejects.toMatchObject({ code: 'ENOENT' });
    await loadOrCreateSecret({ dataDir: root });
    expect(await loadOrCreateSecret({ secret: configured, dataDir: root })).toBe(configured);
  });

  it('rejects a configured secret shorter than 32 characters', async () => {
    await expect(loadOrCreateSecret({ secret: 'short', dataDir: root })).rejects.toThrow(/at least 32/);
  });

  it('tightens a secret file readable by others to 0600', async () => {
    const file = join(root, 'secret');
    await writeFile(file, 'x'.repeat(43) + '\n');
    await chmod(file, 0o644);
    expect(await loadOrCreateSecret({ dataDir: root })).toBe('x'.repeat(43));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('refuses a truncated secret file instead of using a weak secret', async () => {
    await writeFile(join(root, 'secret'), 'tooshort', { mode: 0o600 });
    await expect(loadOrCreateSecret({ dataDir: root })).rejects.toThrow(/fewer than 32/);
  });
});
