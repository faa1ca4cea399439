/**
 * Hand-built streams for the model tests and the bench: sessionized events carrying features, the
 * session summaries a sessionizer would emit, and watermarks, without depending on those operators.
 */
import { watermark, type ClickEvent, type Element, type SessionSummary, type StreamRecord } from 'tributary';

/** Mulberry32: a small seeded generator, so the streams are the same on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const featureNames = ['signal', 'noise_a', 'noise_b', 'noise_c'];

export function event(userId: string, sessionId: string, time: number, position: number, start: number, type: string, values?: number[], category = 'c1'): ClickEvent {
  const e: ClickEvent = { kind: 'event', userId, time, type, category, price: 10, session: { id: sessionId, position, sinceStart: time - start, sincePrevious: position === 0 ? 0 : 60_000, start } };
  if (values) e.features = { names: featureNames, values: Float32Array.from(values) };
  return e;
}

export function summary(userId: string, sessionId: string, start: number, end: number, eventCount: number, purchased: boolean, counts: Record<string, number> = {}): SessionSummary & StreamRecord {
  const record: SessionSummary = { kind: 'session', userId, sessionId, start, end, eventCount, counts, purchased };
  return record as SessionSummary & StreamRecord;
}

/**
 * Sessions of 4 to 6 views; about 30% end in a purchase. Buyers' events carry a `signal` feature
 * near +1 and view the `hot` category; the rest near -1 and view `cold`: separable by either.
 */
export function separableIntentStream(sessions: number, seed = 1): Element[] {
  const random = rng(seed);
  const out: Element[] = [];
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  for (let s = 0; s < sessions; s++) {
    const buyer = random() < 0.3;
    const start = t0 + s * 600_000;
    const user = `u${s % 97}`;
    const id = `s${s}`;
    const views = 4 + Math.floor(random() * 3);
    let t = start;
    for (let p = 0; p < views; p++) {
      const signal = (buyer ? 1 : -1) + (random() - 0.5) * 0.8;
      out.push(event(user, id, t, p, start, 'view', [signal, random() * 2 - 1, random() * 2 - 1, random() * 2 - 1], buyer ? 'hot' : 'cold'));
      t += 60_000;
    }
    if (buyer) out.push(event(user, id, t, views, start, 'purchase', [1, 0, 0, 0], 'hot'));
    out.push(summary(user, id, start, buyer ? t : t - 60_000, views + (buyer ? 1 : 0), buyer));
    if (s % 10 === 9) out.push(watermark(t));
  }
  out.push(watermark(Infinity));
  return out;
}
