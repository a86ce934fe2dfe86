/**
 * Lifecycle of a benchmark child process: control messages (readiness, the stop report) go as
 * JSON lines on file descriptor 3, so stdout stays free for the server's own output (the
 * gateway's log goes there, to a file, exactly as `maxrouter serve > file` would write it).
 * The child stops cleanly (so `--cpu-prof` profiles and logs get written) on SIGTERM/SIGINT or
 * when the parent goes away (its end of our stdin closes).
 */
import { writeSync } from 'node:fs';

// tsx turns on source-mapped stack traces; a production `node bin/maxrouter.js` has them off,
// and they make every `error.stack` costly. Importing this module turns them off again.
process.setSourceMapsEnabled(false);

const CONTROL_FD = 3;

/** Sends one control message to the parent; a parent that is gone is not an error. */
export function report(msg: Record<string, unknown>): void {
  try {
    writeSync(CONTROL_FD, `${JSON.stringify(msg)}\n`);
  } catch {
    /* parent gone */
  }
}

export function announce(info: Record<string, unknown>): void {
  report({ ready: true, pid: process.pid, ...info });
}

export function stopOnParentExit(stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    // Never hang: a stuck close still ends the process.
    setTimeout(() => process.exit(1), 10_000).unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
