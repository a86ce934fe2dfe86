/**
 * Every rate-limit store test runs against each store here:
 *
 *   for (const target of STORES) {
 *     describe.skipIf(target.skip)(target.name, () => { … const s = await target.open() … });
 *   }
 *
 * memory: a fresh `MemoryRateStore` on a fake clock (`advance` moves it). redis (when
 * TEST_REDIS_URL is set): a `RedisRateStore` under a fresh key prefix `mr-test:<random>:`;
 * `advance` really sleeps (Redis scripts read the server's clock), `second()` opens another
 * store on its own connection sharing the prefix (a second gateway instance), and `cleanup()`
 * deletes the prefix's keys and closes every connection.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { MemoryRateStore, RedisRateStore, type RateStore } from '../../src/limits/store.js';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;

const WARNED = Symbol.for('maxrouter.test.redisSkipWarned');
if (!TEST_REDIS_URL && !(globalThis as Record<symbol, unknown>)[WARNED]) {
  (globalThis as Record<symbol, unknown>)[WARNED] = true;
  console.warn(
    '[maxrouter tests] TEST_REDIS_URL is not set: Redis rate-limit store tests are SKIPPED. ' +
      'Set it (e.g. TEST_REDIS_URL=redis://127.0.0.1:6379) to run them.',
  );
}

export interface OpenedStore {
  store: RateStore;
  /** Another store sharing the same state (the same object in memory, a new connection in Redis). */
  second(): Promise<RateStore>;
  /** Moves time forward: the fake clock in memory, a real sleep in Redis. */
  advance(ms: number): Promise<void>;
  /** The raw Redis keys under this store's prefix (Redis only). */
  admin?: { client: Redis; prefix: string };
  cleanup(): Promise<void>;
}

export interface StoreTarget {
  name: 'memory' | 'redis';
  skip: boolean;
  /** Whether `advance` is exact (fake clock) rather than a real sleep. */
  exactTime: boolean;
  open(): Promise<OpenedStore>;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const memory: StoreTarget = {
  name: 'memory',
  skip: false,
  exactTime: true,
  async open() {
    let now = 1_700_000_000_000;
    const store = new MemoryRateStore({ clock: () => now });
    return {
      store,
      second: async () => store,
      async advance(ms) {
        now += ms;
      },
      cleanup: () => store.close(),
    };
  },
};

const redis: StoreTarget = {
  name: 'redis',
  skip: TEST_REDIS_URL === undefined,
  exactTime: false,
  async open() {
    if (TEST_REDIS_URL === undefined) throw new Error('TEST_REDIS_URL is not set');
    const prefix = `mr-test:${randomBytes(6).toString('hex')}:`;
    const stores: RedisRateStore[] = [];
    const openStore = async () => {
      const s = new RedisRateStore({ url: TEST_REDIS_URL, prefix });
      stores.push(s);
      if (!(await s.ready(5_000))) throw new Error('Redis at TEST_REDIS_URL is not reachable');
      return s;
    };
    const store = await openStore();
    const client = new Redis(TEST_REDIS_URL, { lazyConnect: false });
    client.on('error', () => {});
    return {
      store,
      second: openStore,
      advance: sleep,
      admin: { client, prefix },
      async cleanup() {
        const keys = await scanKeys(client, prefix);
        if (keys.length > 0) await client.del(...keys);
        await Promise.all(stores.map((s) => s.close()));
        client.disconnect();
      },
    };
  },
};

export const STORES: readonly StoreTarget[] = [memory, redis];

/** Every key under `prefix`. */
export async function scanKeys(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

// ---------------------------------------------------------------------------------------------
// A dedicated redis-server, for tests that stop and restart it.
// ---------------------------------------------------------------------------------------------

export const HAVE_REDIS_SERVER = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
  });
}

export interface RedisServer {
  port: number;
  url: string;
  /** Starts the server (again, on the same port); resolves once it answers PING. */
  start(): Promise<void>;
  /** Kills the server (SIGKILL, like a crash); resolves once it has exited. */
  stop(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

/** A `redis-server --port <free> --save '' --appendonly no` in a temp dir, not yet started. */
export async function redisServer(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'mr-test-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'],
        { stdio: 'ignore' },
      );
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
        if (await pingOnce(port)) return;
        await sleep(50);
      }
      throw new Error('redis-server did not start');
    },
    async stop() {
      const c = child;
      child = undefined;
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async dispose() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}
