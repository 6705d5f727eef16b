import { z } from 'zod';

/** A replica's lag per feed, as stored. */
export const Lag = z.record(z.string(), z.number());
