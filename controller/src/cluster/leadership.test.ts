import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { onEveryDatabase } from '../store/database-fixtures.js';
import { Leadership } from './leadership.js';

const log = pino({ level: 'silent' });

onEveryDatabase((name, make) => {
  describe(`leadership (${name})`, () => {
    it('one leads; a leader paused past its lease is fenced out by the one that took over, then follows', async () => {
      const f = await make();
      const events: string[] = [];
      const replica = (id: string) =>
        new Leadership({
          cluster: f.db.cluster,
          id,
          leaseMs: 300,
          startedAt: Date.now(),
          http: () => null,
          lag: () => ({}),
          log,
          onLead: (l) => {
            events.push(`${id} leads (token ${l.token})`);
          },
          onLose: () => {
            events.push(`${id} follows`);
          },
        });
      const a = replica('a');
      const b = replica('b');
      try {
        await a.round();
        await b.round();
        expect(events).toEqual(['a leads (token 1)']);
        await f.db.transaction(() => a.fence());
        await expect(f.db.transaction(() => b.fence())).rejects.toMatchObject({ code: 'E_NOT_LEADER' });
        // a is "paused" (no rounds) past its lease; b takes over
        await new Promise((r) => setTimeout(r, 400));
        await b.round();
        expect(events.at(-1)).toBe('b leads (token 2)');
        // a still believes it leads: its write is refused all the same, by the database
        expect(a.held?.token).toBe(1);
        await expect(f.db.transaction(() => a.fence())).rejects.toMatchObject({ code: 'E_NOT_LEADER' });
        await f.db.transaction(() => b.fence());
        // at its next round a steps down and follows
        await a.round();
        expect(events.at(-1)).toBe('a follows');
        expect(a.held).toBeUndefined();
        // a clean stop hands over at once
        await b.stop();
        await a.round();
        expect(events.slice(-2)).toEqual(['b follows', 'a leads (token 3)']);
      } finally {
        await a.stop();
        await b.stop();
        await f.close();
      }
    });
  });
});
