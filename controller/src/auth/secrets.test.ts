import { describe, expect, it } from 'vitest';
import { newSecret } from './secrets.js';

describe('newSecret', () => {
  it('is 256 random bits in base64url that a command line never reads as an option', () => {
    const seen = new Set<string>();
    // With a plain base64url draw, 1 in 64 starts with '-': 2,000 draws hit one with probability 1 - (63/64)^2000.
    for (let i = 0; i < 2000; i++) {
      const s = newSecret();
      expect(s).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/);
      seen.add(s);
    }
    expect(seen.size).toBe(2000);
  });
});
