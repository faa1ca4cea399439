/**
 * What a model's scores do not show by themselves, said beside them so a null AUC or a bare 0.5 is not left to
 * guess: no label, one class only, every label scored before the model learnt, predictions that were not a number.
 * The model stage says it (its end-of-run log line, its `model_metrics` record's `scoreReason` and `scoreNotes`),
 * as only it knows its counts and the config fields that change them; a backtest shows what the record carries.
 */
import type { ModelCounts } from 'tributary';
import type { PrequentialSummary } from './prequential.js';

/** `reason`, in a few words, why the AUC is null or measures nothing learnt; `notes`, each said whole (empty: nothing to say). */
export interface ScoreNotes {
  reason?: string;
  notes: string[];
}

/** The counts the notes read. */
export type NotedCounts = Pick<ModelCounts, 'predictions' | 'unlabelledAtEnd' | 'overflow' | 'expired' | 'invalidScores' | 'scoredBeforeLearning'>;

/**
 * The notes of a model's scores, from its prequential summary and counts. `optimizer`: whether the model has an
 * `optimizer.learning_rate` to lower when it diverges (a custom model, defineModel's, has none).
 */
export function scoreNotes(report: { summary: Pick<PrequentialSummary, 'n' | 'positives'>; counts: NotedCounts }, { optimizer = true }: { optimizer?: boolean } = {}): ScoreNotes {
  const { n, positives } = report.summary;
  const c = report.counts;
  const notes: string[] = [];
  let reason: string | undefined;
  const of = (count: number, total: number): string => (count === total ? `all ${total}` : `${count} of ${total}`);
  if (n === 0) {
    reason = 'no label';
    const dropped = c.overflow + c.expired;
    if (c.predictions === 0) notes.push('no label: the model made no prediction');
    else if (c.unlabelledAtEnd > 0)
      notes.push(`no label: ${of(c.unlabelledAtEnd, c.predictions)} predictions still awaited their outcome when the input ended (a session still open, a churn horizon not yet passed): a longer input gives labels`);
    if (dropped > 0) notes.push(`${of(dropped, c.predictions)} predictions were dropped unlabelled (label_buffer.max_size, label_buffer.timeout)`);
  } else if (positives === 0 || positives === n) {
    reason = `one class: every label ${positives === 0 ? 'negative' : 'positive'}`;
    notes.push(`no AUC: all ${n} labels were ${positives === 0 ? 'negative' : 'positive'}, and an AUC needs both outcomes`);
  }
  const before = c.scoredBeforeLearning;
  if (n > 0 && before === n) {
    reason ??= 'every label scored before it learnt';
    notes.push(`all ${n} labels scored predictions made before the model had learnt from any label (it learns once batch.learn_size labels have come): the scores measure the untrained model (a logistic one predicts its prior, the same for every event: AUC 0.5), not what it learns`);
  } else if (before > 0) {
    // Counted as scored before the first learning step: a prediction made before it but labelled after is not, hence 'at least'.
    notes.push(`at least ${before} of ${n} labels scored predictions made before the model had learnt from any label (the untrained model): those scored before its first learning step`);
  }
  if (c.invalidScores > 0) {
    // The most telling: what was scored came before the model diverged, if anything was.
    reason = `diverged: ${of(c.invalidScores, c.predictions)} predictions not a number`;
    notes.push(`${of(c.invalidScores, c.predictions)} predictions were not a number (the model diverged): neither scored nor learnt from${optimizer ? '; lower optimizer.learning_rate' : ''}`);
  }
  return { ...(reason ? { reason } : {}), notes };
}
