/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and lists where the time went: self time
 * per function, inclusive time per function, and self time per package or source file.
 *
 *   node --import tsx bench/analyze-profile.ts FILE.cpuprofile [top=30]
 *   node --import tsx bench/analyze-profile.ts FILE.cpuprofile --callers REGEX [depth=8]
 *
 * `--callers` lists the call chains (leaf first) of the samples whose leaf function matches
 * REGEX (matched against `name file:line`), heaviest first.
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Entry {
  key: string;
  ms: number;
}
export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  selfByFunction: Entry[];
  totalByFunction: Entry[];
  selfByModule: Entry[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  const bench = url.lastIndexOf('/bench/');
  if (bench >= 0) return url.slice(bench + 1);
  return url.replace(/^file:\/\//, '');
}

function functionKey(f: CallFrame): string {
  const name = f.functionName || '(anonymous)';
  const url = shortUrl(f.url);
  return url ? `${name} ${url}:${f.lineNumber + 1}` : name;
}

function moduleKey(f: CallFrame): string {
  const url = f.url;
  if (!url) return f.functionName.startsWith('(') ? f.functionName : '(native/builtin)';
  if (url.startsWith('node:')) return 'node: internals';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `npm ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  return shortUrl(url);
}

const sortDesc = (m: Map<string, number>): Entry[] => [...m].map(([key, ms]) => ({ key, ms })).sort((a, b) => b.ms - a.ms);

async function load(path: string): Promise<{ prof: CpuProfile; byId: Map<number, ProfileNode>; parent: Map<number, number> }> {
  const prof = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  return { prof, byId, parent };
}

/** Call chains (leaf first, `depth` frames) of the samples whose leaf matches `pattern`. */
export async function callersOf(path: string, pattern: RegExp, depth: number): Promise<Entry[]> {
  const { prof, byId, parent } = await load(path);
  const chains = new Map<string, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const node = byId.get(prof.samples[i]!);
    if (!node || !pattern.test(functionKey(node.callFrame))) continue;
    const frames: string[] = [];
    for (let id: number | undefined = node.id; id !== undefined && frames.length < depth; id = parent.get(id)) {
      const k = functionKey(byId.get(id)!.callFrame);
      if (k !== '(root)') frames.push(k);
    }
    const key = frames.join('\n      ← ');
    chains.set(key, (chains.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0) / 1000);
  }
  return sortDesc(chains);
}

/**
 * Time window in the profile's own clock (µs, CLOCK_MONOTONIC on Linux: the clock of
 * `process.hrtime.bigint()`), to keep start-up and warm-up out of the numbers.
 */
export interface Window {
  fromUs: number;
  toUs: number;
}

export async function summarizeProfile(path: string, window?: Window): Promise<ProfileSummary> {
  const { prof, byId, parent } = await load(path);
  let t = prof.startTime;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const mods = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const ms = (prof.timeDeltas[i] ?? 0) / 1000;
    t += prof.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    const node = byId.get(prof.samples[i]!);
    if (!node) continue;
    totalMs += ms;
    if (node.callFrame.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    const k = functionKey(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + ms);
    const mk = moduleKey(node.callFrame);
    mods.set(mk, (mods.get(mk) ?? 0) + ms);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const fk = functionKey(byId.get(id)!.callFrame);
      if (seen.has(fk)) continue;
      seen.add(fk);
      total.set(fk, (total.get(fk) ?? 0) + ms);
    }
  }
  return { totalMs, idleMs, selfByFunction: sortDesc(self), totalByFunction: sortDesc(total), selfByModule: sortDesc(mods) };
}

/** With `requests`, each line also shows the time per request in µs. */
export function formatProfileSummary(s: ProfileSummary, top: number, requests?: number): string {
  const busy = s.totalMs - s.idleMs;
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1).padStart(5)} %`;
  const per = (ms: number) => (requests ? `${((ms * 1000) / requests).toFixed(1).padStart(6)} µs/req ` : '');
  const list = (entries: Entry[]) =>
    entries
      .slice(0, top)
      .map((e) => `  ${e.ms.toFixed(0).padStart(7)} ms ${pct(e.ms)} ${per(e.ms)} ${e.key}`)
      .join('\n');
  return [
    `sampled ${s.totalMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms, busy ${busy.toFixed(0)} ms (percentages are of busy time)` +
      (requests ? `; ${requests} requests → ${((busy * 1000) / requests).toFixed(1)} µs busy per request` : ''),
    `\nself time by function (top ${top}):`,
    list(s.selfByFunction.filter((e) => e.key !== '(root)')),
    `\nself time by package / file (top ${top}):`,
    list(s.selfByModule),
    `\ninclusive time by function (top ${top}):`,
    list(s.totalByFunction.filter((e) => e.key !== '(root)')),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: analyze-profile.ts FILE.cpuprofile [top]');
    process.exit(2);
  }
  if (process.argv[3] === '--callers') {
    const chains = await callersOf(file, new RegExp(process.argv[4] ?? '.'), Number(process.argv[5] ?? 8));
    for (const c of chains.slice(0, 15)) console.log(`${c.ms.toFixed(0).padStart(7)} ms  ${c.key}\n`);
  } else {
    console.log(formatProfileSummary(await summarizeProfile(file), Number(process.argv[3] ?? 30)));
  }
}
