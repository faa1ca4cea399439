/**
 * The long soak's input: months of a shop's visitors as JSON lines, in event-time order. Most visitors
 * come once, as in shop analytics; a fifth come back a few times, days apart. New visitors arrive at a
 * steady rate, so distinct users grow with the span (1M+ over 6 months at the soak's settings) while
 * those active at once stay level: what a daemon run for months sees, in a few million lines. One line
 * in `badEvery` is not JSON (a cut line), for the dead-letter path. Deterministic (createRandom).
 */
import { createRandom } from '../plugins/sources/shoppers.js';

export interface VisitorStreamConfig {
  /** Distinct visitors over the span. */
  users: number;
  /** Event time of the first arrival (ms). */
  start: number;
  /** Span of the arrivals (ms); returns of the last ones run a little past it. */
  span: number;
  /** One line in this many is not JSON (0: none). */
  badEvery: number;
  seed?: number;
}

interface Cursor {
  time: number;
  user: number;
  /** Events left in the current session, sessions left after it. */
  eventsLeft: number;
  sessionsLeft: number;
  propensity: number;
}

const minute = 60_000;
const day = 86_400_000;

/** Lines of JSON (with `\n`), in batches, in event-time order. */
export function* visitorLines(config: VisitorStreamConfig): Generator<string> {
  const random = createRandom(config.seed ?? 5);
  const exponential = (mean: number): number => -Math.log(1 - random()) * mean;
  const heap: Cursor[] = [];
  const up = (i: number): void => {
    const c = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p]!.time <= c.time) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = c;
  };
  const down = (): void => {
    const c = heap[0]!;
    const n = heap.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const m = l + 1 < n && heap[l + 1]!.time < heap[l]!.time ? l + 1 : l;
      if (heap[m]!.time >= c.time) break;
      heap[i] = heap[m]!;
      i = m;
    }
    heap[i] = c;
  };
  const sessionLength = (): number => 1 + Math.floor(exponential(2.5));
  const interArrival = config.span / config.users;
  let nextArrival = config.start;
  let arrived = 0;
  let lines = 0;
  let batch = '';
  for (;;) {
    // The next arrival, when it comes before every cursor's next event.
    if (arrived < config.users && (heap.length === 0 || nextArrival <= heap[0]!.time)) {
      const returner = random() < 0.2;
      heap.push({ time: nextArrival, user: arrived++, eventsLeft: sessionLength(), sessionsLeft: returner ? 1 + Math.floor(exponential(3)) : 0, propensity: random() * 0.3 });
      up(heap.length - 1);
      nextArrival += exponential(interArrival);
      continue;
    }
    if (heap.length === 0) break;
    const c = heap[0]!;
    c.eventsLeft--;
    const last = c.eventsLeft === 0;
    const type = last && random() < c.propensity ? 'purchase' : random() < 0.12 ? 'cart' : 'view';
    const item = Math.floor(random() * 5000);
    if (config.badEvery > 0 && ++lines % config.badEvery === 0) batch += `{"user_id":"v${c.user}","time":${Math.round(c.time)},"ty\n`;
    else batch += `{"user_id":"v${c.user}","time":${Math.round(c.time)},"type":"${type}","item_id":"i${item}","category":"c${item % 50}","price":${(5 + (item % 200)).toFixed(2)}}\n`;
    if (batch.length > 64 * 1024) {
      yield batch;
      batch = '';
    }
    if (!last) {
      c.time += 20_000 + exponential(90_000);
    } else if (c.sessionsLeft > 0) {
      c.sessionsLeft--;
      c.eventsLeft = sessionLength();
      c.time += 2 * 60 * minute + exponential(6 * day);
    } else {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
      if (heap.length > 0) down();
      continue;
    }
    down();
  }
  if (batch !== '') yield batch;
}
