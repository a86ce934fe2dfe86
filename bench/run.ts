/**
 * `npm run bench`: the gateway side by side with a bare Node proxy on the same machine.
 *
 * Child processes (so the load generator shares no event loop with them): a fixed-response
 * upstream, the bare proxy (node:http in, undici Pool out) and the real gateway from `dist/`
 * (access log on at level `info`; a second gateway at level `warn`). autocannon drives each
 * at 32 connections and at 1 for BENCH_DURATION seconds (default 10) after a BENCH_WARMUP-second
 * warm-up (default 2), plus a streaming run at 32 connections. Before the first run each server
 * is loaded for BENCH_PREWARM seconds (default 10), so that it is measured compiled and warm. Then a sequential loop of
 * BENCH_SEQ_REQUESTS requests (default 5 000, after 500 warm-up) times single-connection latency
 * in microseconds, because autocannon's histogram has 1 ms resolution. BENCH_ROUNDS (default 1)
 * repeats everything, interleaved, and reports medians. All traffic goes to 127.0.0.1.
 *
 * Each run also reports the server's CPU time per request and how many cores *other*
 * processes on the machine kept busy meanwhile (from /proc; Linux only); a run during which
 * they took more than BENCH_MAX_OTHER_LOAD cores (default 0.2) is measured again, up to
 * BENCH_RETRIES times (default 2).
 *
 * BENCH_PROFILE=json|stream runs only the `info` gateway (or, with BENCH_PROFILE_TARGET=proxy,
 * the bare proxy) under `node --cpu-prof` at 32 connections (BENCH_PROFILE_CONNECTIONS) and prints its top functions over
 * the measured window, per request.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Client } from 'undici';
import { formatProfileSummary, summarizeProfile } from './analyze-profile.js';
import { coreCount, machineCpu, processCpuSeconds } from './cpu.js';
import { GATEWAY_MODEL, UPSTREAM_MODEL, chatBody, chatStreamBody } from './payloads.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PATH = '/v1/chat/completions';

function envNumber(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${v}'`);
  return n;
}

const DURATION = envNumber('BENCH_DURATION', 10);
const WARMUP = envNumber('BENCH_WARMUP', 2);
/** Load each server takes once, before the first measured run, to reach its steady state (JIT). */
const PREWARM = envNumber('BENCH_PREWARM', 10);
const SEQ_REQUESTS = Math.round(envNumber('BENCH_SEQ_REQUESTS', 5000));
const SEQ_WARMUP = Math.min(500, SEQ_REQUESTS);
const ROUNDS = Math.min(10, Math.round(envNumber('BENCH_ROUNDS', 1)));
const MAX_OTHER_LOAD = Number(process.env.BENCH_MAX_OTHER_LOAD ?? 0.2);
const RETRIES = Math.max(0, Math.round(Number(process.env.BENCH_RETRIES ?? 2)));
const PROFILE = ((v) => (v === '1' ? 'json' : v))(process.env.BENCH_PROFILE) as 'json' | 'stream' | undefined;
if (PROFILE !== undefined && PROFILE !== 'json' && PROFILE !== 'stream') throw new Error('BENCH_PROFILE must be json or stream');
const PROFILE_CONNECTIONS = envNumber('BENCH_PROFILE_CONNECTIONS', 32);

// ─── child processes ────────────────────────────────────────────────────────────────────────

interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  info: Record<string, unknown>;
  /** Lines printed after the ready line (e.g. the gateway's stop report). */
  later: Record<string, unknown>[];
  exited: Promise<void>;
}

const children: Child[] = [];

/**
 * Spawns `bench/<script>` under tsx. Control messages come back on fd 3; stdout goes to
 * `stdoutFd` (the gateway's log file) or is discarded; stderr is shared.
 */
function startChild(name: string, script: string, args: string[], nodeArgs: string[] = [], stdoutFd?: number): Promise<Child> {
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join(ROOT, 'bench', script), ...args], {
    cwd: ROOT,
    stdio: ['pipe', stdoutFd ?? 'ignore', 'inherit', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return new Promise<Child>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not become ready within 60 s`)), 60_000);
    const child: Child = { name, proc, pid: proc.pid ?? -1, info: {}, later: [], exited };
    children.push(child);
    let ready = false;
    createInterface({ input: proc.stdio[3] as Readable }).on('line', (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        process.stderr.write(`[${name}] ${line}\n`);
        return;
      }
      if (!ready && msg.ready === true) {
        ready = true;
        clearTimeout(timer);
        child.info = msg;
        resolve(child);
      } else {
        child.later.push(msg);
      }
    });
    proc.once('exit', (code, signal) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`${name} exited before it was ready (code ${code}, signal ${signal})`));
      }
    });
  });
}

/** A gateway child whose stdout (its log) goes to `<dir>/<name>.log`. */
async function startGatewayChild(name: string, upstreamUrl: string, level: string, logDir: string, nodeArgs: string[] = []): Promise<Child> {
  const fd = openSync(join(logDir, `${name}.log`), 'a');
  try {
    return await startChild(name, 'gateway-server.ts', [upstreamUrl, level], nodeArgs, fd);
  } finally {
    closeSync(fd); // the child holds its own copy
  }
}

/** Access-log lines a gateway wrote (read after it stopped and flushed). */
async function accessLogLines(logDir: string, name: string): Promise<number> {
  try {
    const text = await readFile(join(logDir, `${name}.log`), 'utf8');
    let n = 0;
    for (let i = text.indexOf('"msg":"request"'); i >= 0; i = text.indexOf('"msg":"request"', i + 1)) n++;
    return n;
  } catch {
    return -1;
  }
}

async function stopChild(child: Child): Promise<void> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGTERM');
  const killer = setTimeout(() => child.proc.kill('SIGKILL'), 15_000);
  await child.exited;
  clearTimeout(killer);
}

/** SIGTERM, not SIGKILL: each child then cleans up (temp database, profile) and exits by itself within 10 s. */
function killAll(): void {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
}
/** Directories this process made and removes on any exit (the gateways' log files). */
const tempDirs: string[] = [];
process.on('exit', () => {
  killAll();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => process.exit(130));
}

// ─── measurements ───────────────────────────────────────────────────────────────────────────

interface Target {
  name: string;
  url: string;
  /** The process serving this target (its CPU per request is reported). */
  pid: number;
  headers: Record<string, string>;
  body: string;
  streamBody: string;
}

type Mode = 'json' | 'stream';

interface LoadRow {
  target: string;
  mode: Mode;
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  failures: number;
  /** CPU µs the target's server process spent per request. */
  cpuUsPerReq?: number;
  /** Cores kept busy by processes other than this benchmark's, averaged over the run. */
  otherCores?: number;
  /** Cores' worth of time the hypervisor stole, averaged over the run. */
  stealCores?: number;
  /** The measured window (after warm-up), µs of the monotonic clock. */
  window: { fromUs: number; toUs: number };
}

interface SeqRow {
  target: string;
  /** As in LoadRow. */
  otherCores?: number;
  stealCores?: number;
  count: number;
  p50us: number;
  p90us: number;
  p99us: number;
  meanUs: number;
}

/** One request, checked: status 200 and a body of the expected shape. */
async function check(t: Target, stream: boolean): Promise<void> {
  const client = new Client(new URL(t.url).origin);
  try {
    const res = await client.request({ method: 'POST', path: PATH, headers: t.headers, body: stream ? t.streamBody : t.body });
    const text = await res.body.text();
    const ok =
      res.statusCode === 200 &&
      (stream ? text.trimEnd().endsWith('data: [DONE]') && text.includes('"usage"') : text.includes('"chat.completion"'));
    if (!ok) throw new Error(`${t.name}: unexpected answer ${res.statusCode}: ${text.slice(0, 300)}`);
  } finally {
    await client.close();
  }
}

/** CPU seconds of this process and every child so far. */
function ourCpuSeconds(): number {
  const u = process.cpuUsage();
  let s = (u.user + u.system) / 1e6;
  for (const c of children) s += processCpuSeconds(c.pid) ?? 0;
  return s;
}

/** Watches how much CPU processes outside this benchmark (and the hypervisor) take. */
function startProbe(): { stop(): { otherCores?: number; stealCores?: number } } {
  const ours0 = ourCpuSeconds();
  const machine0 = machineCpu();
  const wall0 = process.hrtime.bigint();
  return {
    stop() {
      const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
      const machine1 = machineCpu();
      if (!machine0 || !machine1) return {};
      return {
        otherCores: Math.max(0, (machine1.busy - machine0.busy - (ourCpuSeconds() - ours0)) / wall),
        stealCores: (machine1.steal - machine0.steal) / wall,
      };
    },
  };
}

const disturbedBy = (r: { otherCores?: number; stealCores?: number }) => (r.otherCores ?? 0) + (r.stealCores ?? 0);

/**
 * Runs a measurement again (up to BENCH_RETRIES times) while other processes took more than
 * BENCH_MAX_OTHER_LOAD cores during it: on a shared machine a neighbour's test run would
 * otherwise decide the numbers. The last attempt is kept either way, and flagged.
 */
async function undisturbed<R extends { otherCores?: number; stealCores?: number }>(what: string, run: () => Promise<R>): Promise<R> {
  for (let attempt = 0; ; attempt++) {
    const r = await run();
    if (disturbedBy(r) <= MAX_OTHER_LOAD || attempt >= RETRIES) return r;
    process.stderr.write(`  (${what}: other processes took ${fmt(disturbedBy(r), 2)} cores; measuring again)\n`);
  }
}

function load(t: Target, mode: Mode, connections: number): Promise<LoadRow> {
  return undisturbed(`${t.name} ${mode} c=${connections}`, () => loadOnce(t, mode, connections));
}

function sequential(t: Target): Promise<SeqRow> {
  return undisturbed(`${t.name} sequential`, () => sequentialOnce(t));
}

async function prewarm(t: Target): Promise<void> {
  process.stderr.write(`  ${t.name.padEnd(15)} warming up (${PREWARM} s)\n`);
  for (const body of [t.body, t.streamBody]) {
    await autocannon({ url: t.url + PATH, method: 'POST', headers: t.headers, body, connections: 32, duration: PREWARM / 2 });
  }
}

async function loadOnce(t: Target, mode: Mode, connections: number): Promise<LoadRow> {
  const opts = {
    url: t.url + PATH,
    method: 'POST',
    headers: t.headers,
    body: mode === 'stream' ? t.streamBody : t.body,
    connections,
    pipelining: 1,
    timeout: 10,
  };
  await autocannon({ ...opts, duration: WARMUP });
  const server0 = processCpuSeconds(t.pid);
  const probe = startProbe();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const r = await autocannon({ ...opts, duration: DURATION });
  const toUs = Number(process.hrtime.bigint() / 1000n);
  const disturbance = probe.stop();
  const server1 = processCpuSeconds(t.pid);
  const row: LoadRow = {
    target: t.name,
    mode,
    connections,
    rps: r['2xx'] / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: r['2xx'],
    failures: r.errors + r.timeouts + r.non2xx,
    ...disturbance,
    window: { fromUs, toUs },
  };
  if (server0 !== undefined && server1 !== undefined && row.requests > 0) row.cpuUsPerReq = ((server1 - server0) * 1e6) / row.requests;
  process.stderr.write(
    `  ${t.name.padEnd(15)} ${mode.padEnd(6)} c=${String(connections).padEnd(3)} ${fmt(row.rps, 0).padStart(7)} req/s` +
      `  p50 ${row.p50} ms  p99 ${row.p99} ms  server CPU ${row.cpuUsPerReq === undefined ? '?' : fmt(row.cpuUsPerReq, 0)} µs/req` +
      `  other load ${row.otherCores === undefined ? '?' : fmt(row.otherCores, 2)} cores` +
      `  steal ${row.stealCores === undefined ? '?' : fmt(row.stealCores, 2)} cores` +
      (row.failures ? `  FAILURES ${row.failures}` : '') +
      '\n',
  );
  return row;
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Sequential requests on one keep-alive connection, each timed with hrtime. */
async function sequentialOnce(t: Target): Promise<SeqRow> {
  const client = new Client(new URL(t.url).origin, { pipelining: 1, keepAliveTimeout: 60_000 });
  const deadline = Date.now() + 120_000;
  const times: number[] = [];
  let probe: ReturnType<typeof startProbe> | undefined;
  try {
    for (let i = 0; i < SEQ_WARMUP + SEQ_REQUESTS && Date.now() < deadline; i++) {
      const t0 = process.hrtime.bigint();
      const res = await client.request({ method: 'POST', path: PATH, headers: t.headers, body: t.body });
      await res.body.dump({ limit: 1 << 20 });
      const t1 = process.hrtime.bigint();
      if (res.statusCode !== 200) throw new Error(`${t.name}: status ${res.statusCode} in the sequential loop`);
      if (i >= SEQ_WARMUP) times.push(Number(t1 - t0) / 1000);
      else if (i === SEQ_WARMUP - 1) probe = startProbe();
    }
  } finally {
    await client.close();
  }
  times.sort((a, b) => a - b);
  const row: SeqRow = {
    target: t.name,
    count: times.length,
    p50us: percentile(times, 50),
    p90us: percentile(times, 90),
    p99us: percentile(times, 99),
    meanUs: times.reduce((a, b) => a + b, 0) / times.length,
    ...probe?.stop(),
  };
  process.stderr.write(
    `  ${t.name.padEnd(15)} sequential n=${row.count}  p50 ${fmt(row.p50us, 0)} µs  p99 ${fmt(row.p99us, 0)} µs` +
      `  other load ${row.otherCores === undefined ? '?' : fmt(row.otherCores, 2)} cores\n`,
  );
  return row;
}

// ─── output ─────────────────────────────────────────────────────────────────────────────────

function fmt(n: number, digits: number): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : '-'.repeat(w - 1) + ':')).join(' | ')} |`;
  return [line(head), sep, ...rows.map(line)].join('\n');
}

// ─── the comparison ─────────────────────────────────────────────────────────────────────────

const plain = { 'content-type': 'application/json' };

function gatewayTarget(child: Child, name: string): Target {
  return {
    name,
    url: String(child.info.url),
    pid: child.pid,
    headers: { ...plain, authorization: `Bearer ${String(child.info.apiKey)}` },
    body: chatBody(GATEWAY_MODEL),
    streamBody: chatStreamBody(GATEWAY_MODEL),
  };
}

function plainTarget(child: Child, name: string): Target {
  return { name, url: String(child.info.url), pid: child.pid, headers: plain, body: chatBody(UPSTREAM_MODEL), streamBody: chatStreamBody(UPSTREAM_MODEL) };
}

async function compare(): Promise<void> {
  const logDir = mkdtempSync(join(os.tmpdir(), 'mr-bench-logs-'));
  tempDirs.push(logDir);
  const upstream = await startChild('upstream', 'upstream.ts', []);
  const upstreamUrl = String(upstream.info.url);
  const [proxy, gwInfo, gwWarn] = await Promise.all([
    startChild('bare-proxy', 'bare-proxy.ts', [upstreamUrl]),
    startGatewayChild('gateway-info', upstreamUrl, 'info', logDir),
    startGatewayChild('gateway-warn', upstreamUrl, 'warn', logDir),
  ]);
  const direct = plainTarget(upstream, 'direct');
  const bare = plainTarget(proxy, 'bare proxy');
  const gateway = gatewayTarget(gwInfo, 'gateway (info)');
  const gatewayWarn = gatewayTarget(gwWarn, 'gateway (warn)');
  const targets = [direct, bare, gateway, gatewayWarn];
  for (const t of targets) {
    await check(t, false);
    await check(t, true);
  }
  // A server just started is still being compiled: the gateway, with more code on its path,
  // reaches its steady throughput after about 9 s of load, the bare proxy after about 3 s. Each
  // one is loaded (JSON, then stream) before the first measured run, so round 1 measures servers
  // in the state they run in for days, not their start-up.
  for (const t of targets) await prewarm(t);

  const scenarios: [Mode, number][] = [
    ['json', 32],
    ['json', 1],
    ['stream', 32],
  ];
  const runs: LoadRow[] = [];
  const seqRuns: SeqRow[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`round ${round}/${ROUNDS}:`);
    for (const [mode, c] of scenarios) for (const t of targets) runs.push(await load(t, mode, c));
    for (const t of targets) seqRuns.push(await sequential(t));
  }

  // Stop the gateways first: they flush usage and report what they wrote.
  await Promise.all([stopChild(gwInfo), stopChild(gwWarn)]);
  await Promise.all([stopChild(proxy), stopChild(upstream)]);
  const report = (c: Child) => c.later.find((m) => m.stopped === true) ?? {};
  const logLines = { info: await accessLogLines(logDir, 'gateway-info'), warn: await accessLogLines(logDir, 'gateway-warn') };

  const rows = scenarios.flatMap(([mode, c]) =>
    targets.map((t) => {
      const rs = runs.filter((r) => r.target === t.name && r.mode === mode && r.connections === c);
      const opt = (xs: (number | undefined)[]) => (xs.every((x) => x !== undefined) ? median(xs as number[]) : undefined);
      return {
        target: t.name,
        mode,
        connections: c,
        rps: median(rs.map((r) => r.rps)),
        rounds: rs.map((r) => r.rps),
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        failures: rs.reduce((n, r) => n + r.failures, 0),
        cpuUsPerReq: opt(rs.map((r) => r.cpuUsPerReq)),
        otherCores: rs.some((r) => r.otherCores !== undefined) ? Math.max(...rs.map((r) => r.otherCores ?? 0)) : undefined,
        stealCores: rs.some((r) => r.stealCores !== undefined) ? Math.max(...rs.map((r) => r.stealCores ?? 0)) : undefined,
      };
    }),
  );
  const seq = targets.map((t) => {
    const ss = seqRuns.filter((s) => s.target === t.name);
    return {
      target: t.name,
      p50us: median(ss.map((s) => s.p50us)),
      p90us: median(ss.map((s) => s.p90us)),
      p99us: median(ss.map((s) => s.p99us)),
      meanUs: median(ss.map((s) => s.meanUs)),
    };
  });

  const med = ROUNDS > 1 ? ` (medians of ${ROUNDS} rounds)` : '';
  console.log(`\n### Throughput and latency (autocannon, ${DURATION} s per run; latency resolution 1 ms)${med}\n`);
  console.log(
    table(
      [
        'target',
        'body',
        'conns',
        'req/s',
        ...(ROUNDS > 1 ? ['req/s per round'] : []),
        'p50 ms',
        'p99 ms',
        'server CPU µs/req',
        'other load (cores, max)',
        'steal (cores, max)',
        'failed',
      ],
      rows.map((r) => [
        r.target,
        r.mode,
        String(r.connections),
        fmt(r.rps, 0),
        ...(ROUNDS > 1 ? [r.rounds.map((x) => fmt(x, 0)).join(' / ')] : []),
        String(r.p50),
        String(r.p99),
        r.cpuUsPerReq === undefined ? '—' : fmt(r.cpuUsPerReq, 0),
        r.otherCores === undefined ? '—' : fmt(r.otherCores, 2),
        r.stealCores === undefined ? '—' : fmt(r.stealCores, 2),
        String(r.failures),
      ]),
    ),
  );
  console.log(`\n### Single-connection latency (sequential, ${SEQ_REQUESTS} requests after ${SEQ_WARMUP} warm-up, µs)${med}\n`);
  const d = seq.find((s) => s.target === 'direct')!;
  console.log(
    table(
      ['target', 'p50 µs', 'p90 µs', 'p99 µs', 'mean µs', 'p50 over direct µs'],
      seq.map((s) => [s.target, fmt(s.p50us, 0), fmt(s.p90us, 0), fmt(s.p99us, 0), fmt(s.meanUs, 0), s === d ? '—' : fmt(s.p50us - d.p50us, 0)]),
    ),
  );

  const rps = (target: string, mode: Mode, c: number) => rows.find((r) => r.target === target && r.mode === mode && r.connections === c)!.rps;
  const p50 = (target: string) => seq.find((s) => s.target === target)!.p50us;
  const ratio = rps('gateway (info)', 'json', 32) / rps('bare proxy', 'json', 32);
  const ratioWarn = rps('gateway (warn)', 'json', 32) / rps('bare proxy', 'json', 32);
  const ratioStream = rps('gateway (info)', 'stream', 32) / rps('bare proxy', 'stream', 32);
  const addedGw = (p50('gateway (info)') - p50('direct')) / 1000;
  const addedGwWarn = (p50('gateway (warn)') - p50('direct')) / 1000;
  const addedProxy = (p50('bare proxy') - p50('direct')) / 1000;
  const verdict = (ok: boolean) => (ok ? 'meets target' : 'MISSES target');
  console.log('\n### Ratios\n');
  console.log(`- gateway (info) / bare proxy throughput, 32 connections, JSON: ${fmt(ratio, 2)} (target ≥ 0.60: ${verdict(ratio >= 0.6)})`);
  console.log(`- gateway (warn) / bare proxy throughput, 32 connections, JSON: ${fmt(ratioWarn, 2)}`);
  console.log(`- gateway (info) / bare proxy throughput, 32 connections, stream: ${fmt(ratioStream, 2)}`);
  console.log(
    `- added p50 latency over direct, 1 connection (sequential loop): gateway (info) ${fmt(addedGw, 3)} ms ` +
      `(target ≤ 0.25 ms: ${verdict(addedGw <= 0.25)}), gateway (warn) ${fmt(addedGwWarn, 3)} ms, bare proxy ${fmt(addedProxy, 3)} ms`,
  );
  console.log(`- failed requests across all load runs: ${rows.reduce((n, r) => n + r.failures, 0)}`);
  const disturbed = Math.max(0, ...runs.map(disturbedBy), ...seqRuns.map(disturbedBy));
  if (disturbed > MAX_OTHER_LOAD) {
    console.log(
      `- WARNING: other processes (or the hypervisor) took up to ${fmt(disturbed, 2)} of ${coreCount} cores during some runs: ` +
        'those numbers are disturbed; rerun on a quiet machine before recording them',
    );
  }
  const ri = report(gwInfo);
  const rw = report(gwWarn);
  console.log(
    `- gateway (info) wrote ${String(ri.usageRows ?? '?')} usage rows and ${logLines.info} access-log lines; ` +
      `gateway (warn) ${String(rw.usageRows ?? '?')} usage rows and ${logLines.warn} access-log lines`,
  );
}

// ─── the profile ────────────────────────────────────────────────────────────────────────────

async function profile(mode: Mode, which: 'gateway' | 'proxy'): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mr-bench-prof-'));
  const upstream = await startChild('upstream', 'upstream.ts', []);
  const profArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=250'];
  const gw =
    which === 'gateway'
      ? await startGatewayChild('gateway-info', String(upstream.info.url), 'info', dir, profArgs)
      : await startChild('bare-proxy', 'bare-proxy.ts', [String(upstream.info.url)], profArgs);
  const t = which === 'gateway' ? gatewayTarget(gw, 'gateway (info)') : plainTarget(gw, 'bare proxy');
  await check(t, mode === 'stream');
  await prewarm(t);
  const row = await load(t, mode, PROFILE_CONNECTIONS);
  await stopChild(gw);
  await stopChild(upstream);
  // The loader (tsx) runs in a worker thread that writes its own, nearly idle, profile: take the busiest.
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const summaries = await Promise.all(files.map(async (f) => ({ f, s: await summarizeProfile(join(dir, f), row.window) })));
  summaries.sort((a, b) => b.s.totalMs - b.s.idleMs - (a.s.totalMs - a.s.idleMs));
  const main = summaries[0];
  if (!main) throw new Error(`no profile written to ${dir}`);
  console.log(`\n### CPU profile of ${t.name}, ${mode}, ${PROFILE_CONNECTIONS} connection(s), ${DURATION} s: ${join(dir, main.f)}\n`);
  console.log(`${fmt(row.rps, 0)} req/s under the profiler (slower than without); ${row.requests} requests in the window\n`);
  console.log(formatProfileSummary(main.s, 30, row.requests));
}

/** The commit measured, with `-dirty` when src/ has uncommitted changes. */
function gitRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return `${head}${dirty ? ' (src/ has uncommitted changes)' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

// ─── main ───────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const cpus = os.cpus();
  console.log(`MaxRouter bench — ${new Date().toISOString()}`);
  console.log(
    `machine: ${cpus[0]?.model ?? 'unknown'}, ${coreCount} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
      `${os.type()} ${os.release()} ${os.arch()}; node ${process.version}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  );
  console.log(
    `each server pre-warmed for ${PREWARM} s; ${DURATION} s per run after ${WARMUP} s warm-up; sequential loop ${SEQ_REQUESTS} requests after ${SEQ_WARMUP} warm-up; ${ROUNDS} round(s)`,
  );
  console.log(`source: ${gitRevision()}`);
  if (PROFILE) await profile(PROFILE, process.env.BENCH_PROFILE_TARGET === 'proxy' ? 'proxy' : 'gateway');
  else await compare();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    killAll();
    process.exit(1);
  },
);
