/**
 * Heap the model stages keep per unit of traffic, for sizing (docs/operations.md, Sizing): per open
 * intent session (its first prediction awaiting the session's label), per further prediction awaiting
 * in that session, per churn user (one closed session, its prediction awaiting the horizon), for a
 * `logistic` and a `gru` model, with F features per event as a pipeline's feature stages give them.
 * The same per prediction not held by a full label buffer (label_buffer.max_size 100, far below the predictions awaiting).
 * Each figure is the difference of two runs (n and 2n units), each operator kept while the heap is
 * read after a full collection, so what every run holds once (the model, its backend, the code) cancels.
 *
 *   node --expose-gc --max-old-space-size=8192 dist/bench/model-state.js [n=20000] [features=42]
 */
import { runOperator, testContext } from 'tributary/testing';
import type { ClickEvent, Element, OperatorPlugin } from 'tributary';
import intentModel from '../plugins/models/intent.js';
import churnModel from '../plugins/models/churn.js';
import { summary } from '../plugins/models/testdata.js';

const n = Number(process.argv[2] ?? 20_000);
const featureCount = Number(process.argv[3] ?? 42);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc: the heap is read after a full collection');
const t0 = Date.UTC(2024, 0, 1);
const names = Array.from({ length: featureCount }, (_, i) => `f${i}`);

function event(user: number, position: number): ClickEvent {
  const start = t0 + user;
  const time = start + position * 60_000;
  const values = Float32Array.from(names, (_, i) => ((user * 31 + position * 7 + i) % 97) / 97);
  return {
    kind: 'event', userId: `user-${user}`, time, type: 'view', category: `c${user % 50}`, price: 10,
    session: { id: `s-${user}`, position, sinceStart: time - start, sincePrevious: position === 0 ? 0 : 60_000, start },
    features: { names, values },
  };
}

/** `units` intent sessions of `events` events each, open (no summary): every prediction awaits its label. */
function intentInput(units: number, events: number): Element[] {
  const out: Element[] = [];
  for (let u = 0; u < units; u++) for (let p = 0; p < events; p++) out.push(event(u, p));
  return out;
}

/** `units` churn users with one closed session each: its prediction awaits the horizon. */
function churnInput(units: number): Element[] {
  const out: Element[] = [];
  for (let u = 0; u < units; u++) out.push(event(u, 0), summary(`user-${u}`, `s-${u}`, t0 + u, t0 + u + 60_000, 1, false));
  return out;
}

function heapUsed(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

/** Heap held by an operator that took `input`, the operator kept (its output and input dropped). */
async function held<C>(plugin: OperatorPlugin<C>, config: Partial<C>, input: () => Element[]): Promise<{ bytes: number; keep: unknown }> {
  const before = heapUsed();
  const run = await runOperator(plugin, config, input(), testContext());
  const keep = run.operator;
  const bytes = heapUsed() - before;
  return { bytes, keep };
}

const kept: unknown[] = [];
async function perUnit<C>(plugin: OperatorPlugin<C>, config: Partial<C>, input: (units: number) => Element[], divisor: number): Promise<number> {
  const one = await held(plugin, config, () => input(n));
  const two = await held(plugin, config, () => input(2 * n));
  kept.push(one.keep, two.keep);
  return (two.bytes - one.bytes) / divisor;
}

const batch = { max_size: 256, max_delay: 0 };
const models = {
  logistic: { kind: 'logistic' },
  gru: { kind: 'gru', units: 16, sequence_length: 12 },
} as const;

// Warm-up: the backend, the code and the models' first allocations are not counted.
await runOperator(intentModel, { backend: 'cpu', batch, model: models.gru } as never, intentInput(300, 2));
await runOperator(churnModel, { backend: 'cpu', batch, model: models.gru } as never, churnInput(300));

const rows: Record<string, number | string>[] = [];
for (const [kind, model] of Object.entries(models)) {
  const config = { backend: 'cpu', batch, model } as never;
  const session1 = await perUnit(intentModel, config, (units) => intentInput(units, 1), n);
  const session4 = await perUnit(intentModel, config, (units) => intentInput(units, 4), n);
  const user = await perUnit(churnModel, config, churnInput, n);
  // A label buffer far smaller than the predictions awaiting: all but its first max_size are not held (overflow).
  const small = { backend: 'cpu', batch, model, label_buffer: { max_size: 100 } } as never;
  const intentUnheld = await perUnit(intentModel, small, (units) => intentInput(units, 4), 4 * n);
  const churnUnheld = await perUnit(churnModel, small, churnInput, n);
  rows.push({
    model: kind,
    features: featureCount,
    'intent: open session, 1 prediction awaiting (B)': Math.round(session1),
    'intent: each further prediction awaiting (B)': Math.round((session4 - session1) / 3),
    'churn: user, 1 prediction awaiting (B)': Math.round(user),
    'intent: each prediction not held (B)': Math.round(intentUnheld),
    'churn: each prediction not held (B)': Math.round(churnUnheld),
  });
}
console.table(rows);
console.log(JSON.stringify({ n, features: featureCount, rows }));
process.exit(0); // the models' backends keep handles open
