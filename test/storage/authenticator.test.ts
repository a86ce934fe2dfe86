import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey, generateKeyId, hashApiKey, keyChecksum, last4 } from '../../src/auth/api-key.js';
import { KeyAuthenticator, type KeyLookupSource } from '../../src/auth/authenticator.js';
import { GatewayError } from '../../src/ir/errors.js';
import type { Database } from '../../src/storage/database.js';
import { migrateToLatest } from '../../src/storage/migrations.js';
import { createRepositories, type Repositories } from '../../src/storage/repositories.js';
import { DATABASES } from '../helpers/databases.js';
import { eventually } from '../helpers/gateway.js';

const SECRET = 'auth-test-secret-auth-test-secret-0123456';

/** Counts database lookups made through the repo. */
function counting(source: KeyLookupSource): KeyLookupSource & { calls: number } {
  const wrapper = {
    calls: 0,
    findKeyByHash(hash: string) {
      wrapper.calls++;
      return source.findKeyByHash(hash);
    },
  };
  return wrapper;
}

async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a rejection');
}

/** What a client would see: the error's wire-relevant fields. */
function body(e: GatewayError) {
  return { code: e.code, status: e.status, type: e.type, message: e.message, param: e.param };
}

for (const target of DATABASES) {
  describe.skipIf(target.skip)(`KeyAuthenticator on ${target.name}`, () => {
    let database: Database;
    let repos: Repositories;
    let accountId: string;

    async function newKey(name?: string): Promise<{ key: string; id: string }> {
      const key = generateApiKey();
      const id = generateKeyId();
      await repos.keys.insertKey({ id, accountId, name: name ?? null, keyHash: hashApiKey(key, SECRET), last4: last4(key) });
      return { key, id };
    }

    beforeEach(async () => {
      database = await target.open();
      await migrateToLatest(database);
      repos = createRepositories(database.db);
      accountId = (await repos.accounts.createAccount('auth@example.com')).id;
    });
    afterEach(async () => {
      await database.close();
    });

    it('accepts a valid key as Bearer (any case) or bare', async () => {
      const { key, id } = await newKey();
      const auth = new KeyAuthenticator(repos.keys, SECRET);
      expect(await auth.authenticate(`Bearer ${key}`)).toMatchObject({ keyId: id, accountId });
      expect(await auth.authenticate(`bearer ${key}`)).toMatchObject({ keyId: id, accountId });
      expect(await auth.authenticate(`BEARER   ${key} `)).toMatchObject({ keyId: id, accountId });
      expect(await auth.authenticate(key)).toMatchObject({ keyId: id, accountId });
    });

    it('rejects revoked keys, disabled accounts, unknown and malformed keys with one identical error', async () => {
      const revoked = await newKey();
      await repos.keys.revokeKey(revoked.id);
      const other = await repos.accounts.createAccount('disabled@example.com');
      const disabledKey = generateApiKey();
      await repos.keys.insertKey({ id: generateKeyId(), accountId: other.id, keyHash: hashApiKey(disabledKey, SECRET), last4: 'xxxx' });
      await repos.accounts.setDisabled(other.id, true);
      const valid = await newKey();
      const body43 = valid.key.slice(3, 46);
      const badChecksum = `mr_${body43}${keyChecksum(body43) === '000000' ? '000001' : '000000'}`;

      const source = counting(repos.keys);
      const auth = new KeyAuthenticator(source, SECRET);
      const cases: Record<string, string | undefined> = {
        missing: undefined,
        empty: '',
        bearerOnly: 'Bearer ',
        wrongScheme: `Basic ${valid.key}`,
        wrongLength: `Bearer ${valid.key.slice(0, -1)}`,
        wrongChecksum: `Bearer ${badChecksum}`,
        wrongPrefix: `Bearer sk_${valid.key.slice(3)}`,
        unknown: `Bearer ${generateApiKey()}`,
        revoked: `Bearer ${revoked.key}`,
        disabledAccount: `Bearer ${disabledKey}`,
      };
      const bodies = new Map<string, unknown>();
      for (const [name, header] of Object.entries(cases)) {
        const e = await rejection(auth.authenticate(header));
        bodies.set(name, body(e));
      }
      const first = bodies.get('missing');
      expect(first).toEqual({
        code: 'MR_ERR_UNAUTHORIZED',
        status: 401,
        type: 'authentication_error',
        message: 'Invalid API key.',
        param: null,
      });
      for (const [name, b] of bodies) expect(b, name).toEqual(first);
      // Only well-formed keys reached the database: unknown, revoked, disabled.
      expect(source.calls).toBe(3);
    });

    it('serves repeat lookups from the cache, positive and negative', async () => {
      const { key, id } = await newKey();
      const source = counting(repos.keys);
      const auth = new KeyAuthenticator(source, SECRET);
      for (let i = 0; i < 5; i++) expect(await auth.authenticate(`Bearer ${key}`)).toMatchObject({ keyId: id, accountId });
      expect(source.calls).toBe(1);
      // Cache hits return the same frozen object (no per-request allocation of the identity).
      expect(await auth.authenticate(key)).toBe(await auth.authenticate(key));

      const unknown = generateApiKey();
      for (let i = 0; i < 5; i++) await rejection(auth.authenticate(unknown));
      expect(source.calls).toBe(2);

      const revoked = await newKey();
      await repos.keys.revokeKey(revoked.id);
      for (let i = 0; i < 3; i++) await rejection(auth.authenticate(revoked.key));
      expect(source.calls).toBe(3);
    });

    it('shares one lookup among concurrent misses', async () => {
      const { key } = await newKey();
      const source = counting(repos.keys);
      const auth = new KeyAuthenticator(source, SECRET);
      await Promise.all(Array.from({ length: 10 }, () => auth.authenticate(key)));
      expect(source.calls).toBe(1);
    });

    it('expires entries after their TTL', async () => {
      const { key } = await newKey();
      let now = 1_000_000;
      const source = counting(repos.keys);
      const auth = new KeyAuthenticator(source, SECRET, { ttlMs: 1000, refreshMs: 1000, negativeTtlMs: 100, now: () => now });
      await auth.authenticate(key);
      now += 999;
      await auth.authenticate(key);
      expect(source.calls).toBe(1);
      now += 1;
      await auth.authenticate(key);
      expect(source.calls).toBe(2);

      const unknown = generateApiKey();
      await rejection(auth.authenticate(unknown));
      now += 99;
      await rejection(auth.authenticate(unknown));
      expect(source.calls).toBe(3);
      now += 1;
      await rejection(auth.authenticate(unknown));
      expect(source.calls).toBe(4);
    });

    it('reloads a used entry in the background after refreshMs, so a revoke elsewhere applies without waiting for the TTL', async () => {
      const { key, id } = await newKey();
      let now = 1_000_000;
      const source = counting(repos.keys);
      const auth = new KeyAuthenticator(source, SECRET, { ttlMs: 2000, now: () => now }); // refresh after 1 000 ms
      await auth.authenticate(key);
      now += 1000;
      await repos.keys.revokeKey(id); // by another process: no invalidate() here
      // This use is still served from the cache, and starts a reload.
      expect(await auth.authenticate(key)).toMatchObject({ keyId: id });
      await eventually(() => expect(source.calls).toBe(2));
      await new Promise((r) => setTimeout(r, 10));
      await rejection(auth.authenticate(key));
      expect(source.calls).toBe(2);

      // A deleted key is forgotten by the reload too.
      const other = await newKey();
      await auth.authenticate(other.key);
      now += 1000;
      await repos.keys.deleteKey(accountId, other.id);
      await auth.authenticate(other.key);
      await eventually(() => expect(source.calls).toBe(4));
      await new Promise((r) => setTimeout(r, 10));
      await rejection(auth.authenticate(other.key));
    });

    it('invalidate(keyId) makes a revoke take effect at once', async () => {
      const { key, id } = await newKey();
      const source = counting(repos.keys);
      const auth = new KeyAuthenticator(source, SECRET);
      await auth.authenticate(key);
      await repos.keys.revokeKey(id);
      // Still cached as valid…
      expect(await auth.authenticate(key)).toMatchObject({ keyId: id, accountId });
      auth.invalidate(id);
      await rejection(auth.authenticate(key));
      expect(source.calls).toBe(2);
      auth.invalidate('key_unknown');
    });

    it('bounds the cache, and unknown keys never evict known ones', async () => {
      const keys = await Promise.all([newKey(), newKey(), newKey()]);
      const source = counting(repos.keys);
      const auth = new KeyAuthenticator(source, SECRET, { maxEntries: 2 });
      for (const k of keys) await auth.authenticate(k.key);
      expect(auth.size.known).toBe(2);
      expect(source.calls).toBe(3);
      await auth.authenticate(keys[2]!.key); // newest: still cached
      await auth.authenticate(keys[1]!.key);
      expect(source.calls).toBe(3);
      await auth.authenticate(keys[0]!.key); // oldest was evicted
      expect(source.calls).toBe(4);

      for (let i = 0; i < 20; i++) await rejection(auth.authenticate(generateApiKey()));
      expect(auth.size).toEqual({ known: 2, unknown: 2 });
      const before = source.calls;
      await auth.authenticate(keys[0]!.key);
      await auth.authenticate(keys[1]!.key);
      expect(source.calls).toBe(before);
    });

    it('reports a database failure as an internal error, not as 401, and does not cache it', async () => {
      const { key, id } = await newKey();
      let fail = true;
      const auth = new KeyAuthenticator(
        {
          findKeyByHash: (hash) => (fail ? Promise.reject(new Error('connection refused')) : repos.keys.findKeyByHash(hash)),
        },
        SECRET,
      );
      const e = await rejection(auth.authenticate(key));
      expect(e.code).toBe('MR_ERR_INTERNAL');
      expect(e.message).not.toContain('connection refused');
      fail = false;
      expect(await auth.authenticate(key)).toMatchObject({ keyId: id, accountId });
    });

    it('a key hashed with another secret is unknown', async () => {
      const { key } = await newKey();
      const auth = new KeyAuthenticator(repos.keys, 'another-secret-another-secret-another-1');
      await rejection(auth.authenticate(key));
    });
  });
}
