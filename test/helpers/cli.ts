/** A CLI context that captures what a command prints, for the `maxrouter` command tests. */
import type { CliContext } from '../../src/cli/context.js';

export interface CapturedCli extends CliContext {
  out: string[];
  err: string[];
  /** Forgets what was printed so far. */
  reset(): void;
}

export function capturedCli(settings: Omit<CliContext, 'stdout' | 'stderr'>): CapturedCli {
  const out: string[] = [];
  const err: string[] = [];
  return {
    ...settings,
    stdout: (s) => void out.push(s),
    stderr: (s) => void err.push(s),
    out,
    err,
    reset() {
      out.length = 0;
      err.length = 0;
    },
  };
}
