/**
 * The server secret keys the HMAC of stored API keys. It comes from the config (`secret`) or is
 * generated once into `<dataDir>/secret` (32 random bytes, base64url, mode 0600). Losing or
 * changing it invalidates every API key.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const SECRET_FILE_NAME = 'secret';
/** Same floor as the config schema's `secret`. */
export const MIN_SECRET_LENGTH = 32;

export interface LoadSecretOptions {
  /** The configured secret; wins over the file when given. */
  secret?: string | undefined;
  dataDir: string;
}

/** The configured secret, or the one in `<dataDir>/secret`, created on first use. */
export async function loadOrCreateSecret(opts: LoadSecretOptions): Promise<string> {
  if (opts.secret !== undefined && opts.secret !== '') {
    if (opts.secret.length < MIN_SECRET_LENGTH) {
      throw new Error(`The configured secret must be at least ${MIN_SECRET_LENGTH} characters.`);
    }
    return opts.secret;
  }
  const file = join(opts.dataDir, SECRET_FILE_NAME);
  const existing = await readSecretFile(file);
  if (existing !== undefined) return existing;

  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  try {
    // 'wx': never overwrite a secret another process created meanwhile.
    await writeFile(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const raced = await readSecretFile(file);
      if (raced !== undefined) return raced;
    }
    throw err;
  }
  return secret;
}

async function readSecretFile(file: string): Promise<string | undefined> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // Group or other may read it: tighten to owner-only before using it.
  if ((mode & 0o077) !== 0) await chmod(file, 0o600);
  const secret = (await readFile(file, 'utf8')).trim();
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(
      `The secret file ${file} holds fewer than ${MIN_SECRET_LENGTH} characters. ` +
        'Restore it from a backup, or delete it to generate a new one (every existing API key stops working).',
    );
  }
  return secret;
}
