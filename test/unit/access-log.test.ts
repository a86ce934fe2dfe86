import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AccessLog } from '../../src/server/access-log.js';

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
});
