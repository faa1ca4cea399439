/**
 * A model's scores over its last labels (its sliding window), as a person reads them: the model stage's end-of-run
 * line (`tributary run`, the demo) and a backtest's summary say them in these words, each at its own precision.
 */
export interface RecentScores {
  /** The labels the window holds. */
  n: number;
  /** Null: the window holds one class only. */
  auc: number | null;
  /** Null (or any value) where the window holds no label. */
  logloss: number | null;
}

/**
 * `last N labels: AUC A, log loss L` with `digits` decimals, or undefined where it says nothing the cumulative scores
 * do not: no label yet, or the window holding every label of the `total` scored. Its log loss is said whatever its AUC:
 * a window of one class (no buyer lately) has no AUC, but its loss says how the model does.
 */
export function recentScoresText(recent: RecentScores, total: number, digits: number): string | undefined {
  if (recent.n === 0 || recent.n === total || recent.logloss === null) return undefined;
  const auc = recent.auc === null ? 'n/a (one class)' : recent.auc.toFixed(digits);
  return `last ${recent.n} labels: AUC ${auc}, log loss ${recent.logloss.toFixed(digits)}`;
}
