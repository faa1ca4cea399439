/**
 * CPU per event of the demo pipeline's model stages alone (intent-model + churn-model as
 * pipelines/demo.yaml declares them): the demo's feature stages run once over the synthetic stream
 * (seed 7, 2,000 users, a watermark after each batch of 1,024 events, as the runtime sends), their
 * output is kept, and then replayed through fresh model operators `reps` times after two unmeasured
 * warm-up replays (the JIT settles over the first ones). CPU time
 * (process.cpuUsage) is less disturbed by a busy machine than wall time, so this is the A/B figure
 * for work on the model operators; the whole-pipeline ratio is bench/models.ts.
 *
 *   node dist/bench/model-stages.js [events=100000] [reps=6]
 */
import { loadavg } from 'node:os';
import { watermark, type ClickEvent, type Element, type OperatorPlugin } from 'tributary';
import { silentLogger, testContext } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { Chain, stage, type Stage } from '../plugins/operators/harness.js';
import synthetic from '../plugins/sources/synthetic.js';
import { demoStages, isModelStage as isModel } from './data.js';
import { median } from './machine.js';

const events = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 6);
const demo = { stages: demoStages() };
const registry = await builtinRegistry();

function stagesOf(specs: Record<string, unknown>[]): Stage[] {
  return specs.map(({ type, ...config }) => {
    const plugin = registry.get('operator', String(type)) as OperatorPlugin<never> | undefined;
    if (!plugin) throw new Error(`no operator '${String(type)}'`);
    return stage(plugin, config as never);
  });
}

const context = (): ReturnType<typeof testContext> => testContext({ logger: silentLogger, clock: { now: () => Date.UTC(2030, 0, 1) } });

// The feature stream, once.
const stream: Element[] = [];
const features = await Chain.build(stagesOf(demo.stages.filter((s) => !isModel(s))), context(), undefined, (element) => void stream.push(element));
const source = await synthetic.create({ seed: 7, users: 2000, events, rate: 0, items: 5000, categories: 50, start: '2024-01-01T00:00:00Z', session_ids: false, clock: 'simulated' }, context());
let pending: ClickEvent[] = [];
for await (const batch of source.read()) {
  for (const event of batch) {
    pending.push(event);
    if (pending.length === 1024) {
      features.push(pending).push([watermark(pending[pending.length - 1]!.time)]);
      pending = [];
    }
  }
}
features.push(pending).push([watermark(Infinity)]);
features.end();

const modelStages = stagesOf(demo.stages.filter(isModel));
const cpuUs: number[] = [];
let predictions = 0;
for (let r = -2; r < reps; r++) {
  predictions = 0;
  const models = await Chain.build(modelStages, context(), undefined, (element) => void (element.kind === 'prediction' && predictions++));
  const before = process.cpuUsage();
  models.push(stream);
  models.end();
  for (const operator of models.operators) await operator.close?.();
  const used = process.cpuUsage(before);
  if (r >= 0) cpuUs.push((used.user + used.system) / events);
}
console.log(
  JSON.stringify({ events, elements: stream.length, predictions, reps, cpuUsPerEvent: cpuUs.map((x) => Number(x.toFixed(2))), median: Number(median(cpuUs).toFixed(2)), load: Number(loadavg()[0]!.toFixed(2)) }),
);
