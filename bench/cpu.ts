/**
 * CPU accounting on Linux from /proc: the CPU time of one process, and of the whole machine,
 * so a run can report its server's CPU per request and how busy *other* processes kept the
 * cores meanwhile (a noisy neighbour skews every number). Elsewhere every reading is undefined.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every mainstream Linux build

/** CPU seconds (user + system) used so far by process `pid`. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

export interface MachineCpu {
  /** Busy CPU seconds summed over all cores (everything but idle and iowait). */
  busy: number;
  /** Seconds stolen by the hypervisor, summed over all cores. */
  steal: number;
}

export function machineCpu(): MachineCpu | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
    return { busy: (user! + nice! + system! + irq! + softirq!) / TICKS_PER_SECOND, steal: (steal ?? 0) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

export const coreCount = os.cpus().length;
