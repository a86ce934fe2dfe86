import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AccessLog, quote } from '../../src/server/access-log.js';

describe('AccessLog', () => {
  it('writes one JSON line in the logger format with allowlisted fields only', () => {
    const lines: string[] = [];
    const log = new AccessLog(pino({ level: 'info' }), { write: (l: string) => lines.push(l) });
    log.write({ reqId: 'req-1', model: 'a/"b"', status: 200, streamed: true, promptTokens: 3, ...({ messages: 'SECRET PROMPT', authorization: 'Bearer mr_x' } as object) });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    const obj = JSON.parse(lines[0]!);
    expect(obj).toMatchObject({ level: 30, service: 'maxrouter', reqId: 'req-1', model: 'a/"b"', status: 200, streamed: true, promptTokens: 3, msg: 'request' });
    expect(typeof obj.time).toBe('number');
    expect(lines[0]).not.toContain('SECRET');
    expect(lines[0]).not.toContain('mr_x');
  });

  it('writes nothing below level info', () => {
    const lines: string[] = [];
    new AccessLog(pino({ level: 'warn' }), { write: (l: string) => lines.push(l) }).write({ status: 200 });
    expect(lines).toEqual([]);
  });

  it('in batch mode hands lines over together: at the size bound, after the delay, or on flush', async () => {
    const chunks: string[] = [];
    const log = new AccessLog(pino({ level: 'info' }), { write: (l: string) => chunks.push(l) }, { batchMs: 20, batchBytes: 400 });
    log.write({ status: 200 });
    log.write({ status: 201 });
    expect(chunks).toEqual([]);
    await new Promise((r) => setTimeout(r, 40));
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.split('\n').filter(Boolean).map((l) => JSON.parse(l).status)).toEqual([200, 201]);
    for (let i = 0; i < 10; i++) log.write({ status: 300 + i });
    expect(chunks.length).toBeGreaterThan(1); // the size bound was reached without waiting
    log.flush();
    const all = chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l).status);
    expect(all).toEqual([200, 201, ...Array.from({ length: 10 }, (_, i) => 300 + i)]);
  });
});

describe('quote', () => {
  it('is JSON.stringify for any string, escapes included', () => {
    for (const s of ['', 'key_01', 'openai/gpt-4o', 'a"b', 'a\\b', 'line\nbreak', '\u0000', '\ud800', 'é ☃ 😀']) {
      expect(quote(s)).toBe(JSON.stringify(s));
    }
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => {
        expect(quote(s)).toBe(JSON.stringify(s));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('the default log destination', () => {
  it('writes a quiet server’s buffered lines out within the flush interval, not only once kilobytes have gathered', async () => {
    const { mkdtempSync, openSync, closeSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createLogging, flushLogger } = await import('../../src/server/logger.js');
    const dir = mkdtempSync(join(tmpdir(), 'mr-test-log-'));
    const file = join(dir, 'out.log');
    const fd = openSync(file, 'w');
    try {
      // As `maxrouter serve` logs: the access log batches into the logger's 4 KiB buffered destination.
      const { logger, destination } = createLogging('info', undefined, { fd, flushMs: 100 });
      const log = new AccessLog(logger, destination, { batchMs: 20 });
      log.write({ reqId: 'req-quiet', status: 200 });
      await new Promise((r) => setTimeout(r, 50));
      expect(readFileSync(file, 'utf8')).toBe(''); // one short line: still buffered
      await new Promise((r) => setTimeout(r, 300));
      const text = readFileSync(file, 'utf8');
      expect(text.split('\n').filter(Boolean).map((l) => JSON.parse(l).reqId)).toEqual(['req-quiet']);
      await flushLogger(logger);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
