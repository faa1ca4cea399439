/**
 * How good is the demo's churn model? Its prequential scores, by period of event time, against the
 * generator's own churn probability for each session (the shopper's latent hazard and return gap,
 * which only the simulation knows: a ceiling no model of the observable history reaches) and against
 * a one-feature rule (fewer sessions so far, more likely gone). The demo pipeline as declared
 * (pipelines/demo.yaml: synthetic source, seed 7), with a sink that keeps the churn predictions.
 *
 *   node dist/bench/churn-ceiling.js [events=200000] [--write]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline, parseDuration, type Prediction } from 'tributary';
import { builtinRegistry } from '../core/cli/registry.js';
import { exactAuc } from '../plugins/models/prequential.js';
import { ShopperWorld, trueChurnProbability } from '../plugins/sources/shoppers.js';
import type { SyntheticSourceConfig } from '../plugins/sources/synthetic.js';
import { demoStages, runPipeline } from './data.js';
import { commandLine, machine, positionalArgs, publishSection } from './machine.js';

const events = Number(positionalArgs()[0] ?? 200_000);
// The demo as the loader resolves it (variables and defaults filled in), so the replayed world is the demo's.
const demo = await loadPipeline(new URL('../../pipelines/demo.yaml', import.meta.url).pathname, { registry: await builtinRegistry(), env: {} });
const sourceEntry = demo.sources[0]!.entry as unknown as SyntheticSourceConfig & { type: string };
const churnStage = demo.stages.find((s) => s.entry.type === 'churn-model');
if (sourceEntry.type !== 'synthetic' || !churnStage) throw new Error('pipelines/demo.yaml no longer has a synthetic source and a churn-model stage');
const horizon = parseDuration((churnStage.entry.horizon as string | number | undefined) ?? '7d');
// A label also waits the sessionizer's gap + allowed_lateness past the horizon (a late return's first event may still come).
const sessionizerStage = demo.stages.find((s) => s.entry.type === 'sessionizer');
const labelWait = horizon + (sessionizerStage ? parseDuration(sessionizerStage.entry.gap as string) + parseDuration(sessionizerStage.entry.allowed_lateness as string) : 0);
const source: Record<string, unknown> = { ...sourceEntry, events };
const { seed, users } = sourceEntry;

// 1. The demo, keeping the churn model's predictions (one per closed session, at its end).
const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-churn-'));
const { kept } = await runPipeline(source, demoStages(), (r) => r.kind === 'prediction' && (r as unknown as Prediction).task === 'churn', dir);
rmSync(dir, { recursive: true, force: true });
const scoreOf = new Map<string, number>();
for (const r of kept) {
  const p = r as unknown as Prediction;
  scoreOf.set(`${p.userId}@${p.time}`, p.score);
}

// 2. The same world again, with what the generator knows at each session's end, and the outcome.
interface Ending {
  end: number;
  truth: number;
  sessionsSoFar: number;
  /** Start of the user's next session (undefined: none in the stream). */
  back: number | undefined;
  score: number | undefined;
}
const endings: Ending[] = [];
const awaitingReturn = new Map<string, Ending[]>();
const sessionsOf = new Map<string, number>();
const world = new ShopperWorld({
  seed,
  users,
  items: sourceEntry.items,
  categories: sourceEntry.categories,
  start: Date.parse(sourceEntry.start),
  onSessionEnd: (truth) => {
    const sessions = (sessionsOf.get(truth.userId) ?? 0) + 1;
    sessionsOf.set(truth.userId, sessions);
    const ending: Ending = { end: truth.end, truth: trueChurnProbability(truth, horizon), sessionsSoFar: sessions, back: undefined, score: scoreOf.get(`${truth.userId}@${truth.end}`) };
    endings.push(ending);
    const waiting = awaitingReturn.get(truth.userId);
    if (waiting) waiting.push(ending);
    else awaitingReturn.set(truth.userId, [ending]);
  },
});
let first = Infinity;
let last = -Infinity;
for (let i = 0; i < events; i++) {
  const event = world.next();
  first = Math.min(first, event.time);
  last = Math.max(last, event.time);
  // A user's first event after a session's end starts their next session: the return. (The
  // session's own last event comes with its end, so `end < time` leaves that one waiting.)
  const waiting = awaitingReturn.get(event.userId);
  if (waiting !== undefined && waiting[0]!.end < event.time) {
    for (const e of waiting) if (e.end < event.time) e.back = event.time;
    const still = waiting.filter((e) => e.back === undefined);
    if (still.length > 0) awaitingReturn.set(event.userId, still);
    else awaitingReturn.delete(event.userId);
  }
}

// Labelled as the model labels them: once end + horizon + the wait is passed by the last event time (later ones are censored).
const labelled = endings.filter((e) => last - e.end > labelWait);
const missing = labelled.filter((e) => e.score === undefined).length;
if (missing > 0) throw new Error(`${missing} labelled sessions have no churn prediction: the replayed world differs from the demo's`);
const labelOf = (e: Ending): number => (e.back !== undefined && e.back - e.end <= horizon ? 0 : 1);

function aucs(set: Ending[]): { n: number; positives: number; model: number | null; rule: number | null; truth: number | null } {
  const labels = Float64Array.from(set, labelOf);
  return {
    n: set.length,
    positives: labels.reduce((a, b) => a + b, 0),
    model: exactAuc(Float64Array.from(set, (e) => e.score!), labels),
    rule: exactAuc(Float64Array.from(set, (e) => -e.sessionsSoFar), labels),
    truth: exactAuc(Float64Array.from(set, (e) => e.truth), labels),
  };
}

const day = 86_400_000;
const periodDays = Math.max(1, Math.round(horizon / day));
const rows: string[] = [];
const fmt = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(3));
const n = (x: number): string => x.toLocaleString('en-US');
const addRow = (label: string, set: Ending[]): ReturnType<typeof aucs> => {
  const a = aucs(set);
  rows.push(`| ${label} | ${n(a.n)} (${n(a.positives)}) | ${fmt(a.model)} | ${fmt(a.rule)} | ${fmt(a.truth)} |`);
  console.log(JSON.stringify({ period: label, ...a }));
  return a;
};
/** The first horizon's sessions (none of their predictions can have learnt from a label). */
const firstHorizon = aucs(labelled.filter((e) => e.end < first + horizon));
for (let from = first; from <= last; from += periodDays * day) {
  const set = labelled.filter((e) => e.end >= from && e.end < from + periodDays * day);
  if (set.length >= 100) addRow(`sessions ending on days ${Math.round((from - first) / day)}-${Math.round((from - first) / day) + periodDays}`, set);
}
addRow('**all labelled sessions** (the demo\'s summary line)', labelled);
addRow(`sessions ending after the first ${periodDays} days`, labelled.filter((e) => e.end >= first + horizon));
const trained = aucs(labelled.filter((e) => e.end >= first + 2 * horizon));
addRow(`sessions ending after the first ${2 * periodDays} days`, labelled.filter((e) => e.end >= first + 2 * horizon));
const verdict =
  trained.model !== null && trained.rule !== null
    ? `Over sessions ending after two horizons (a horizon of labels learnt) the model ${trained.model > trained.rule ? 'is ahead of' : 'is still behind'} the one-feature rule (${fmt(trained.model)} against ${fmt(trained.rule)}).`
    : '';

publishSection(
  'churn-ceiling',
  `## Churn: the demo's model against the generator's truth

\`${commandLine()}\` — pipelines/demo.yaml as declared (synthetic source, seed ${seed}, ${n(users)} users, ${n(events)} events; churn-model, logistic, horizon ${periodDays} days), its churn predictions kept; then the same world replayed with what only the generator knows at each session's end (the shopper's hazard and mean return gap), turned into the true P(no return within the horizon). Prequential ROC AUC of labelled sessions (end + horizon + the sessionizer's gap and allowed lateness passed before the last event) by the day their session ended; labels as the model gets them.

| sessions | labelled (churned) | churn model | rule: fewer sessions so far | generator's truth (ceiling) |
|---|---|---|---|---|
${rows.join('\n')}

The first horizon's predictions are made before any label can have come (a label waits the whole horizon), so the model scores them all at its prior, an AUC of 0.5 (in this run ${fmt(firstHorizon.model)} over the ${n(firstHorizon.n)} labelled sessions ending in the first ${periodDays} days); the summary line the demo prints averages them in. ${verdict} The truth column knows each shopper's latent hazard and return rate; from the observable history a model can only estimate them, so it bounds what is reachable rather than being a target.

Machine: ${machine()}. Measured ${new Date().toISOString().slice(0, 10)}.`,
);
