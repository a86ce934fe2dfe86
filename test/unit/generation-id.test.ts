import { describe, expect, it } from 'vitest';
import { newGenerationId } from '../../src/gateway/relay.js';

describe('newGenerationId', () => {
  it('is gen- + 32 hex digits, unique, and ordered by time', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => newGenerationId(1_700_000_000_000 + Math.floor(i / 10)));
    for (const id of ids) expect(id).toMatch(/^gen-[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(ids.length);
    const byTime = ids.map((id) => id.slice(4, 16));
    expect([...byTime].sort()).toEqual(byTime);
    expect(newGenerationId(1_700_000_000_001) > newGenerationId(1_700_000_000_000)).toBe(true);
  });
});
