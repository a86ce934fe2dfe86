/**
 * A/B of the gateway at two (or more) git revisions, interleaved on the same machine, so a
 * change can be judged against noise that moves whole runs by ±20 % here:
 *
 *   node --import tsx bench/ab.ts [--rounds N] [--seconds S] [--rate R] [--stream] REV_A REV_B ...
 *
 * Each revision's `src/` and `bench/` are exported (`git archive`) into a temp directory and
 * built there against this checkout's node_modules; `WORKTREE` names the working tree as it
 * is. Per round, every gateway (level `info`, JSON, 32 connections) and the bare proxy run
 * once, in turn (the gateways' order rotating every round), for S seconds after a 2 s warm-up
 * (and a 10 s one before the first round); the medians over rounds of req/s, server CPU µs per
 * request and the ratio to the bare proxy of the same round are printed. With
 * `--rate R` every server gets R requests per second instead of as many as it can take: CPU
 * per request, measured on a machine that is not saturated, is then the steadier comparison.
 * `--stream` sends the streaming body instead of the JSON one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import autocannon from 'autocannon';
import { processCpuSeconds } from './cpu.js';
import { chatBody, chatStreamBody, GATEWAY_MODEL, UPSTREAM_MODEL } from './payloads.js';

const ROOT = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
let rounds = 6;
let seconds = 6;
let rate: number | undefined;
let stream = false;
const revs: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--rounds') rounds = Number(args[++i]);
  else if (args[i] === '--seconds') seconds = Number(args[++i]);
  else if (args[i] === '--rate') rate = Number(args[++i]);
  else if (args[i] === '--stream') stream = true;
  else revs.push(args[i]!);
}
if (revs.length === 0 || !(rounds > 0) || !(seconds > 0) || (rate !== undefined && !(rate > 0))) {
  throw new Error('usage: bench/ab.ts [--rounds N] [--seconds S] [--rate REQ_PER_S] [--stream] REV_A REV_B ...   (a REV may be WORKTREE, and may be followed by node flags: REV,--flag,…)');
}

interface Server {
  name: string;
  proc: ChildProcess;
  pid: number;
  url: string;
  apiKey?: string;
}

const procs: ChildProcess[] = [];
process.on('exit', () => procs.forEach((p) => p.kill('SIGTERM')));

function start(name: string, dir: string, script: string, scriptArgs: string[], nodeArgs: string[] = []): Promise<Server> {
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join(dir, 'bench', script), ...scriptArgs], {
    cwd: ROOT,
    stdio: ['pipe', 'ignore', 'inherit', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  procs.push(proc);
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
    createInterface({ input: proc.stdio[3] as Readable }).on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; url: string; apiKey?: string; pid: number };
      if (msg.ready) resolve({ name, proc, pid: proc.pid!, url: msg.url, ...(msg.apiKey ? { apiKey: msg.apiKey } : {}) });
    });
  });
}

/** Export directories this run created: the only ones it removes at the end. */
const exported: string[] = [];

/** A directory holding the revision's src/ and bench/, built. */
function checkout(rev: string): string {
  if (rev === 'WORKTREE') {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
    return ROOT;
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'mr-ab-'));
  exported.push(dir);
  const files = ['src', 'bench', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];
  execFileSync('sh', ['-c', `git archive ${JSON.stringify(rev)} ${files.join(' ')} | tar -x -C ${JSON.stringify(dir)}`], { cwd: ROOT });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: dir, stdio: 'inherit' });
  return dir;
}

function loadOptions(s: Server) {
  return {
    url: `${s.url}/v1/chat/completions`,
    method: 'POST' as const,
    connections: 32,
    body: (stream ? chatStreamBody : chatBody)(s.apiKey ? GATEWAY_MODEL : UPSTREAM_MODEL),
    headers: { 'content-type': 'application/json', ...(s.apiKey ? { authorization: `Bearer ${s.apiKey}` } : {}) },
  };
}

async function measure(s: Server): Promise<{ rps: number; cpuUs: number }> {
  const opts = { ...loadOptions(s), ...(rate === undefined ? {} : { overallRate: rate }) };
  await autocannon({ ...opts, duration: 2 });
  const cpu0 = processCpuSeconds(s.pid) ?? 0;
  const r = await autocannon({ ...opts, duration: seconds });
  const cpu1 = processCpuSeconds(s.pid) ?? 0;
  if (r.non2xx + r.errors > 0) throw new Error(`${s.name}: ${r.non2xx + r.errors} failed requests`);
  return { rps: r['2xx'] / r.duration, cpuUs: ((cpu1 - cpu0) * 1e6) / r['2xx'] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// `REV,--flag,…` runs that revision's gateway with those node flags (e.g. `WORKTREE,--max-semi-space-size=64`).
const dirs = revs.map((spec) => {
  const [rev, ...nodeArgs] = spec.split(',');
  return { name: spec, nodeArgs, dir: checkout(rev!) };
});
const upstream = await start('upstream', ROOT, 'upstream.ts', []);
const proxy = await start('bare proxy', ROOT, 'bare-proxy.ts', [upstream.url]);
const gateways: Server[] = [];
for (const { name, dir, nodeArgs } of dirs) gateways.push(await start(name, dir, 'gateway-server.ts', [upstream.url, 'info'], nodeArgs));

// Each server is loaded for 10 s first, to be measured compiled and warm (see run.ts).
for (const s of [proxy, ...gateways]) await autocannon({ ...loadOptions(s), duration: 10 });

const results = new Map<string, { rps: number[]; cpu: number[]; ratio: number[] }>();
for (let round = 1; round <= rounds; round++) {
  const base = await measure(proxy);
  process.stderr.write(`round ${round}: bare proxy ${base.rps.toFixed(0)} req/s ${base.cpuUs.toFixed(0)} µs/req\n`);
  // The gateway measured right after the proxy tends to do better (by up to 10 % here): the
  // order rotates every round, so over N rounds of N revisions each has each place once.
  const shift = (round - 1) % gateways.length;
  for (const g of [...gateways.slice(shift), ...gateways.slice(0, shift)]) {
    const m = await measure(g);
    const r = results.get(g.name) ?? { rps: [], cpu: [], ratio: [] };
    r.rps.push(m.rps);
    r.cpu.push(m.cpuUs);
    r.ratio.push(m.rps / base.rps);
    results.set(g.name, r);
    process.stderr.write(`round ${round}: ${g.name} ${m.rps.toFixed(0)} req/s ${m.cpuUs.toFixed(0)} µs/req\n`);
  }
}
const load = rate === undefined ? '32 connections' : `32 connections at ${rate} req/s in all (CPU per request is the measure; the ratio is then meaningless)`;
console.log(`\n${rounds} rounds × ${seconds} s, ${stream ? 'stream' : 'JSON'}, ${load}, gateway at level info; medians:\n`);
console.log('| revision | req/s | server CPU µs/req | ratio to bare proxy |\n| --- | ---: | ---: | ---: |');
for (const [name, r] of results) {
  console.log(`| ${name} | ${median(r.rps).toFixed(0)} | ${median(r.cpu).toFixed(0)} | ${median(r.ratio).toFixed(2)} |`);
}
for (const p of procs) p.kill('SIGTERM');
for (const dir of exported) rmSync(dir, { recursive: true, force: true });
process.exit(0);
