// What the models' test files share (split from one models.test.ts so that each file runs well within the
// test runner's per-file limit). A test helper: not exported by the package (package.json's files leave it out).
import { isModelMetrics, watermark, type Element, type ModelMetrics, type StreamRecord } from 'tributary';
import { testContext } from 'tributary/testing';
import { Subject } from 'rxjs';
import intentModel, { type IntentModelConfig } from './intent.js';
import churnModel from './churn.js';
import { event, rng, summary } from './testdata.js';
import { Chain } from '../operators/harness.js';

export const min = 60_000;
export const hour = 3_600_000;
export const day = 86_400_000;

export const base: IntentModelConfig = { backend: 'cpu', batch: { max_size: 32, max_delay: 0 } };
export const of = (output: Element[], kind: string): StreamRecord[] => output.filter((r) => r.kind === kind) as StreamRecord[];

/** The model's `model_metrics` record (a stage with `report: true`) in `output`. */
export function reportOf(output: readonly Element[]): ModelMetrics {
  const report = output.find(isModelMetrics);
  if (report === undefined) throw new Error('no model_metrics record in the output');
  return report;
}


/** The model outputs of `input` run through `stages` to `cut`, snapshotted, restored in a new chain, and run on: an uninterrupted run's, where restores are exact. */
export async function outputsRestoredAt(stages: Parameters<typeof Chain.build>[0], input: readonly Element[], cut: number): Promise<string> {
  const first = await Chain.build(stages, testContext());
  first.push(input.slice(0, cut));
  const snapshot = await first.snapshot();
  const rest = (await Chain.build(stages, testContext(), snapshot)).push(input.slice(cut)).end();
  return modelOutputs([...first.output, ...rest]);
}

/** An operator fed by hand: elements pushed into `input` are handled at once, what it emits collected in `output`. */
export async function fedOperator(plugin: typeof intentModel | typeof churnModel, config: IntentModelConfig, restore?: unknown) {
  const operator = await plugin.create({ ...config }, testContext());
  await operator.open?.();
  if (restore !== undefined) await operator.restore!(restore);
  const input = new Subject<Element>();
  const output: Element[] = [];
  const done = new Promise<void>((resolve, reject) => operator.apply(input).subscribe({ next: (element) => void output.push(element), error: reject, complete: resolve }));
  return { operator, input, output, done };
}

/**
 * The model's part of the outputs: predictions (id and score), drift records and the final metrics
 * report (every prequential figure, the timeline, the counts).
 */
export const modelOutputs = (output: Element[]): string =>
  output
    .filter((r) => r.kind === 'prediction' || r.kind === 'drift' || r.kind === 'model_metrics')
    .map((r) => JSON.stringify(r))
    .join('\n');

/**
 * Sessions of 4 to 6 views with uninformative features, bought at rate `before` until session
 * `shiftAt`, then at `after`: the label distribution shifts and a calibrated model's loss with it.
 */
export function shiftingIntentStream(sessions: number, shiftAt: number, before: number, after: number, seed: number): Element[] {
  const random = rng(seed);
  const out: Element[] = [];
  const t0 = Date.parse('2024-01-01T00:00:00Z');
  for (let s = 0; s < sessions; s++) {
    const buyer = random() < (s < shiftAt ? before : after);
    const start = t0 + s * 600_000;
    const user = `u${s % 97}`;
    const views = 4 + Math.floor(random() * 3);
    for (let p = 0; p < views; p++) out.push(event(user, `s${s}`, start + p * 60_000, p, start, 'view', [random() * 2 - 1, random() * 2 - 1, random() * 2 - 1, random() * 2 - 1]));
    out.push(summary(user, `s${s}`, start, start + (views - 1) * 60_000, views, buyer));
    if (s % 10 === 9) out.push(watermark(start + views * 60_000));
  }
  out.push(watermark(Infinity));
  return out;
}
