import { FleetwaveError, PRIORITIES, type Priority, type StreamMapping, StreamName } from '@fleetwave/shared';

export interface StreamRoute {
  stream: string;
  priority: Priority;
  /** Storage rank: 0 (alert) leaves first and is dropped last. */
  rank: number;
  ttlMs: number | undefined;
}

interface CompiledMapping {
  segments: { literal?: string; capture?: string }[];
  template: string;
  route: Omit<StreamRoute, 'stream'>;
}

/**
 * Maps local MQTT topics to stream names by the configured patterns; the first matching pattern wins.
 * Pure: compiled once at start-up, then a lookup per reading (memoised per topic, bounded).
 */
export function compileStreamMap(mappings: readonly StreamMapping[]): (topic: string) => StreamRoute {
  const compiled: CompiledMapping[] = mappings.map((m) => {
    const segments = m.pattern
      .split('/')
      .map((s) => (s.startsWith('{') ? { capture: s.slice(1, -1) } : { literal: s }));
    const names = new Set(segments.flatMap((s) => (s.capture ? [s.capture] : [])));
    for (const ref of m.stream.matchAll(/\{([^}]*)\}/g)) {
      if (!names.has(ref[1]!)) {
        throw new FleetwaveError(
          'E_CONFIG_INVALID',
          `stream "${m.stream}" uses {${ref[1]}}, not captured by "${m.pattern}"`,
        );
      }
    }
    return {
      segments,
      template: m.stream,
      route: { priority: m.priority, rank: PRIORITIES.indexOf(m.priority), ttlMs: m.ttl },
    };
  });
  const cache = new Map<string, StreamRoute>();

  return (topic) => {
    const hit = cache.get(topic);
    if (hit) return hit;
    const parts = topic.split('/');
    for (const c of compiled) {
      if (c.segments.length !== parts.length) continue;
      const captures: Record<string, string> = {};
      const ok = c.segments.every((s, i) => {
        const p = parts[i]!;
        if (s.literal !== undefined) return s.literal === p;
        captures[s.capture!] = p;
        return p.length > 0;
      });
      if (!ok) continue;
      const stream = c.template.replace(/\{([^}]*)\}/g, (_, n: string) => captures[n]!);
      if (!StreamName.safeParse(stream).success) {
        throw new FleetwaveError('E_TOPIC_SEGMENT', `topic "${topic}" gives the invalid stream name "${stream}"`);
      }
      const route = { stream, ...c.route };
      if (cache.size < 10_000) cache.set(topic, route);
      return route;
    }
    throw new FleetwaveError('E_TOPIC_UNMAPPED', `topic "${topic}" matches no stream pattern`);
  };
}
