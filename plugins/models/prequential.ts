/**
 * Prequential (test-then-train) scores of a model: each label is scored against the prediction made
 * before it was known. ROC AUC is exact (ties count half) over a sliding window of the last K labels
 * (River's ROCAUC approximates with a few thresholds, which misleads on rare purchases); over every label
 * so far it is counted over score bins, or exact up to `exactAucLimit` distinct scores when that is set
 * (see below). Log loss, Brier score, calibration bins and base rate are cumulative and windowed.
 *
 * The cumulative AUC is kept up to date per label, so reading it is O(1): Fenwick trees over 65,536
 * score bins give the pairs a label wins against the other class in lower (or higher) bins in
 * O(log bins); pairs within a label's own bin count half, or, with `exactAucLimit` above 0, come from
 * each bin's distinct scores, ascending with their counts (a binary search, a sum over the nearer part
 * of the bin and an insertion). That costs 24 bytes
 * per distinct score (at most one per label; fewer where scores repeat, as a model's prior does), up
 * to twice that with the arrays' growth. Past `exactAucLimit` distinct scores the per-bin scores are
 * dropped and later pairs within one bin count half, as ties (the pairs counted so far stay exact):
 * the figure then moves from the exact one by at most the share of later pairs that fall within one
 * bin of 1/65,536. The windowed figures are computed when read.
 */

import type { CalibrationBin, CalibrationError, PrequentialSummary, TimelinePoint } from 'tributary';
import { decodeFloat64s, encodeFloats } from './params.js';

// The figures' types are the public model_metrics record's (core/events.ts).
export type { CalibrationBin, CalibrationError, PrequentialSummary, TimelinePoint };

const bins = 1 << 16;
/**
 * Log loss clips scores to [epsilon, 1 - epsilon] (River's LogLoss: 1e-15). A model's batch scores are
 * float32, which next to 1 step by 6e-8: a score of exactly 1 is a rounded 1 - 3e-8 or less, and at
 * 1e-15 a miss on it would cost 34.5, as if the model had been sure. Here a miss costs at most 16.1.
 */
const epsilon = 1e-7;
/**
 * Default of `metrics.exact_auc_limit`: none kept, the cumulative AUC is binned. Exact, it cost the demo
 * 10-20% more CPU (its two models, about a label per event) and every checkpoint 16 characters per
 * distinct score, for a figure that moved in its fifth decimal (0.87309132 vs 0.87309134).
 */
export const defaultExactAucLimit = 0;

/** The calibration error of a calibration table; null before its first label (no gap to measure, and 0 would read as perfect). */
export function calibrationError(table: readonly CalibrationBin[]): CalibrationError | null {
  let n = 0;
  for (const bin of table) n += bin.count;
  if (n === 0) return null;
  let ece = 0;
  let maxGap = 0;
  for (const bin of table) {
    if (bin.count === 0) continue;
    const gap = Math.abs(bin.meanScore - bin.positiveRate);
    ece += (bin.count / n) * gap;
    maxGap = Math.max(maxGap, gap);
  }
  return { ece, maxGap };
}

export interface PrequentialState {
  window: number;
  calibrationBins: number;
  n: number;
  positives: number;
  sumLogLoss: number;
  sumBrier: number;
  calibration: [number, number, number][];
  /** Per occupied score bin: [bin, positives, negatives]. */
  histogram: [number, number, number][];
  /**
   * The cumulative AUC's pairs won, and its distinct scores (all bins', ascending: base64 float64)
   * with their positive and negative counts, or null past the exact limit. Absent in snapshots from
   * before the AUC was exact: {@link Prequential.load} then puts each bin's labels at its midpoint.
   * `binnedUnder`: see {@link Prequential.binnedUnder} (absent: every pair exact, or a snapshot from
   * before it was kept, whose `exact: null` then reads as binned under limit 0, the default).
   */
  auc?: { won: number; exact: { scores: string; positives: number[]; negatives: number[] } | null; binnedUnder?: number };
  ring: { scores: number[]; labels: number[]; next: number; filled: number };
  timeline: TimelinePoint[];
  every: number;
}

export function logLoss(score: number, label: number): number {
  const p = Math.min(1 - epsilon, Math.max(epsilon, score));
  return label > 0 ? -Math.log(p) : -Math.log(1 - p);
}

/** Sorted scores of the smaller class, reused across calls (grown as needed). */
let minorityScratch = new Float64Array(0);
/** Score buckets of {@link exactAuc}'s index into the sorted scores: [0, 1) in equal steps. */
const aucBuckets = 1024;
/** Per bucket, the first sorted score in it or a later one (NaN last, in a bucket of its own). */
const bucketStart = new Int32Array(aucBuckets + 2);

/** A score's bucket: monotone in the score (so a bucket's scores all lie between its neighbours'), NaN past the rest. */
function bucketOf(score: number): number {
  if (score >= 1) return aucBuckets - 1;
  if (score >= 0) return (score * aucBuckets) | 0;
  return score < 0 ? 0 : aucBuckets;
}

/**
 * The first index in [from, to) of ascending `values` whose value is not below `s` (`pastTies`:
 * above `s`), or `to`: halving while the range is long (a crowded bucket, or ties), then stepping.
 */
function bound(values: Float64Array, from: number, to: number, s: number, pastTies: boolean): number {
  while (to - from > 8) {
    const mid = (from + to) >> 1;
    if (values[mid]! < s || (pastTies && values[mid] === s)) from = mid + 1;
    else to = mid;
  }
  while (from < to && (values[from]! < s || (pastTies && values[from] === s))) from++;
  return from;
}

/** Exact ROC AUC (ties count half) of paired scores and labels; null when one class is missing. */
export function exactAuc(scores: ArrayLike<number>, labels: ArrayLike<number>, count = scores.length): number | null {
  let positives = 0;
  for (let i = 0; i < count; i++) if (labels[i]! > 0) positives++;
  const negatives = count - positives;
  if (positives === 0 || negatives === 0) return null;
  // Only the smaller class is sorted (typed-array sort is native and numeric), and indexed by score
  // bucket; each score of the other class then counts the sorted ones below it and tied with it
  // within its own bucket only (a binary search over all would mispredict a branch per step). Every
  // count is an integer or a half, so the pairs won sum exactly (below 2^53) in any order.
  const minorityPositive = positives <= negatives;
  const m = minorityPositive ? positives : negatives;
  if (minorityScratch.length < m) minorityScratch = new Float64Array(Math.max(m, 2 * minorityScratch.length));
  const sorted = minorityScratch.subarray(0, m);
  for (let i = 0, k = 0; i < count; i++) if (labels[i]! > 0 === minorityPositive) sorted[k++] = scores[i]!;
  sorted.sort();
  for (let b = 0, k = 0; b <= aucBuckets + 1; b++) {
    while (k < m && bucketOf(sorted[k]!) < b) k++;
    bucketStart[b] = k;
  }
  let won = 0;
  let below = 0;
  let tiedEnd = 0;
  let previous = NaN;
  for (let i = 0; i < count; i++) {
    if (labels[i]! > 0 === minorityPositive) continue;
    const s = scores[i]!;
    // Runs of one score are common (a model that has not learnt yet predicts its prior): counted once.
    if (s !== previous) {
      previous = s;
      const b = bucketOf(s);
      // A NaN is below, above and tied with nothing.
      below = tiedEnd = 0;
      if (b < aucBuckets) {
        below = bound(sorted, bucketStart[b]!, bucketStart[b + 1]!, s, false);
        tiedEnd = bound(sorted, below, bucketStart[b + 1]!, s, true);
      }
    }
    // A negative wins for the positives above it; a positive wins against the negatives below it.
    won += (minorityPositive ? m - tiedEnd : below) + (tiedEnd - below) / 2;
  }
  return won / (positives * negatives);
}

/**
 * A {@link Prequential}'s state as at a call of {@link Prequential.stateOnWrite}, copied on write: the call takes
 * the counts and references to the live arrays (O(1) in the labels and bins: the sources are held then); a label
 * added before {@link read} keeps, first, what it is about to change of them (its score bin's counts and distinct
 * scores, its ring slot). `read` builds the state from the arrays and what was kept: what `state()` gave at the call.
 */
export class PrequentialStateCopy {
  /** Per score bin changed since the call: its positives and negatives then. */
  readonly bins = new Map<number, [number, number]>();
  /** Per ring slot overwritten since the call: its score and label then. */
  readonly ring = new Map<number, [number, number]>();
  /** Per score bin whose distinct scores changed since the call: its triples then, cut to its size. */
  readonly exactBins = new Map<number, Float64Array>();
  private result: PrequentialState | undefined;

  constructor(
    private readonly build: (copy: PrequentialStateCopy) => PrequentialState,
    private readonly onRead: (copy: PrequentialStateCopy) => void,
  ) {}

  get done(): boolean {
    return this.result !== undefined;
  }

  /** The state as at the call (built once, then the kept values let go). */
  read(): PrequentialState {
    if (this.result === undefined) {
      this.result = this.build(this);
      this.bins.clear();
      this.ring.clear();
      this.exactBins.clear();
      this.onRead(this);
    }
    return this.result;
  }
}

export class Prequential {
  n = 0;
  positives = 0;
  private sumLogLoss = 0;
  private sumBrier = 0;
  private readonly calibration: Float64Array[];
  private readonly pos = new Float64Array(bins);
  private readonly neg = new Float64Array(bins);
  /** Fenwick trees over the bins (1-based) of positives and negatives, and the pairs won so far. */
  private readonly posTree = new Float64Array(bins + 1);
  private readonly negTree = new Float64Array(bins + 1);
  private won = 0;
  /**
   * Per bin, its distinct scores ascending as [score, positives, negatives] triples (grown as
   * needed), and how many it holds; null once past `exactAucLimit` (pairs within a bin count half).
   */
  private exact: (Float64Array | undefined)[] | null;
  /** Replaced, not cleared, when the distinct scores are dropped: a state copy in progress reads the one it was called with. */
  private exactSizes = new Int32Array(bins);
  private distinctScores = 0;
  /**
   * The `exact_auc_limit` of the run that last counted pairs within a bin half (0: binned by config;
   * this run's own limit: passed here, or by a run of the same config it resumed from; another: a run
   * before a restore that changed it); undefined while every pair is exact. It survives checkpoints,
   * so `aucExact` stays false after a restore that makes later pairs exact again.
   */
  binnedUnder: number | undefined;
  private readonly ringScores: Float64Array;
  private readonly ringLabels: Uint8Array;
  /** Each ring entry's log loss, as `add` computed it (logLoss reads only label > 0): the window's sum costs no logs. */
  private readonly ringLosses: Float64Array;
  private next = 0;
  private filled = 0;
  private timeline: TimelinePoint[] = [];
  private every = 1;
  private static readonly maxPoints = 400;
  /** A state copy not read yet (see stateOnWrite): `add` keeps what it changes first. */
  private copy: PrequentialStateCopy | undefined;

  constructor(
    readonly window: number,
    readonly calibrationBins: number,
    /** Distinct scores kept for the exact cumulative AUC (24 bytes each); past it, it is binned. */
    readonly exactAucLimit = defaultExactAucLimit,
  ) {
    this.exact = exactAucLimit > 0 ? new Array<Float64Array | undefined>(bins) : null;
    this.binnedUnder = exactAucLimit > 0 ? undefined : 0;
    this.ringScores = new Float64Array(window);
    this.ringLabels = new Uint8Array(window);
    this.ringLosses = new Float64Array(window);
    // Per bin: count, sum of scores, sum of labels.
    this.calibration = Array.from({ length: calibrationBins }, () => new Float64Array(3));
    this.every = this.firstPointAt;
  }

  /** The labels after which the timeline's first point is taken: a point costs a windowed AUC (a sort of the window), so no closer than a quarter window. */
  get firstPointAt(): number {
    return Math.max(1, Math.floor(this.window / 4));
  }

  /** Scores one label against its earlier prediction; returns that sample's log loss. */
  add(score: number, label: number, time: number): number {
    if (this.copy !== undefined) this.keepFor(this.copy, score);
    const loss = logLoss(score, label);
    this.n++;
    if (label > 0) this.positives++;
    this.sumLogLoss += loss;
    this.sumBrier += (score - label) ** 2;
    const bin = this.calibration[Math.min(this.calibrationBins - 1, Math.floor(score * this.calibrationBins))]!;
    bin[0]!++;
    bin[1]! += score;
    bin[2]! += label;
    this.countPair(score, label > 0);
    this.ringScores[this.next] = score;
    this.ringLabels[this.next] = label > 0 ? 1 : 0;
    this.ringLosses[this.next] = loss;
    this.next = (this.next + 1) % this.window;
    this.filled = Math.min(this.window, this.filled + 1);
    if (this.n % this.every === 0) this.addPoint(time);
    return loss;
  }

  /** Before a label with `score` is added: what it changes, as it is now, where `copy` has not kept it yet. */
  private keepFor(copy: PrequentialStateCopy, score: number): void {
    const b = binOf(score);
    if (!copy.bins.has(b)) copy.bins.set(b, [this.pos[b]!, this.neg[b]!]);
    if (!copy.ring.has(this.next)) copy.ring.set(this.next, [this.ringScores[this.next]!, this.ringLabels[this.next]!]);
    const exact = this.exact;
    if (exact !== null && !copy.exactBins.has(b)) copy.exactBins.set(b, exact[b]?.slice(0, 3 * this.exactSizes[b]!) ?? new Float64Array(0));
  }

  private addPoint(time: number): void {
    const w = this.windowStats();
    this.timeline.push({ time, n: this.n, auc: w.auc, logloss: w.logloss, cumulativeAuc: this.cumulativeAuc() });
    if (this.timeline.length >= Prequential.maxPoints) {
      // Keep every other point and sample half as often: the timeline stays bounded on any stream.
      this.timeline = this.timeline.filter((_, i) => i % 2 === 1);
      this.every *= 2;
    }
  }

  /**
   * Adds one label: a positive wins against the negatives below its score, a negative against the
   * positives above it, each half against ties. Other bins' labels come from the trees; its own
   * bin's from the bin's distinct scores (or, past the exact limit, all count half).
   */
  private countPair(score: number, positive: boolean): void {
    const b = binOf(score);
    const withinBin = this.exact ? this.exactWithinBin(b, score, positive) : (positive ? this.neg[b]! : this.pos[b]!) / 2;
    if (positive) {
      this.won += prefix(this.negTree, b) + withinBin;
      this.pos[b]!++;
      bump(this.posTree, b);
      this.positivesCounted++;
    } else {
      this.won += this.positivesCounted - prefix(this.posTree, b + 1) + withinBin;
      this.neg[b]!++;
      bump(this.negTree, b);
    }
  }

  /**
   * The pairs a label wins within its own bin `b` (the bin's counts not yet including it), and its
   * score added to the bin's distinct scores; past the exact limit, the bin's pairs count half.
   */
  private exactWithinBin(b: number, score: number, positive: boolean): number {
    const exact = this.exact!;
    const size = this.exactSizes[b]!;
    let entries = exact[b];
    // The first distinct score not below this one.
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (entries![3 * mid]! < score) lo = mid + 1;
      else hi = mid;
    }
    const tied = lo < size && entries![3 * lo] === score;
    if (!tied && this.distinctScores >= this.exactAucLimit) {
      this.dropExact();
      return (positive ? this.neg[b]! : this.pos[b]!) / 2;
    }
    // The other class's count is at offset 2 (negatives) for a positive, 1 (positives) for a negative.
    const other = positive ? 2 : 1;
    const otherInBin = positive ? this.neg[b]! : this.pos[b]!;
    const otherTied = tied ? entries![3 * lo + other]! : 0;
    // The other class below the score, summed over whichever part of the bin is shorter.
    let otherBelow = 0;
    if (lo <= size - lo) {
      for (let i = 0; i < lo; i++) otherBelow += entries![3 * i + other]!;
    } else {
      let otherAtOrAbove = 0;
      for (let i = lo; i < size; i++) otherAtOrAbove += entries![3 * i + other]!;
      otherBelow = otherInBin - otherAtOrAbove;
    }
    const won = (positive ? otherBelow : otherInBin - otherBelow - otherTied) + otherTied / 2;
    const own = positive ? 1 : 2;
    if (tied) {
      entries![3 * lo + own]!++;
      return won;
    }
    if (entries === undefined || entries.length < 3 * (size + 1)) {
      const grown = new Float64Array(3 * Math.max(4, Math.ceil(size * 1.5)));
      if (entries) grown.set(entries.subarray(0, 3 * size));
      exact[b] = entries = grown;
    }
    entries.copyWithin(3 * lo + 3, 3 * lo, 3 * size);
    entries[3 * lo] = score;
    entries[3 * lo + own] = 1;
    entries[3 * lo + 3 - own] = 0;
    this.exactSizes[b] = size + 1;
    this.distinctScores++;
    return won;
  }

  /** Past the exact limit (or at 0): the distinct scores are freed, and later pairs within a bin count half. */
  private dropExact(): void {
    this.exact = null;
    this.exactSizes = new Int32Array(bins);
    this.distinctScores = 0;
    this.binnedUnder = this.exactAucLimit;
  }

  /** Whether every pair of the cumulative AUC was counted exactly (see {@link binnedUnder}). */
  get cumulativeAucExact(): boolean {
    return this.binnedUnder === undefined;
  }

  /**
   * What the summary line adds to the cumulative AUC when it is not exact: nothing when binned by
   * config (limit 0, the documented default); else why, so a person knows whether raising
   * `metrics.exact_auc_limit` would help.
   */
  aucNote(): string {
    const under = this.binnedUnder;
    if (under === undefined || this.exactAucLimit === 0) return '';
    if (under === this.exactAucLimit) return ' (binned past metrics.exact_auc_limit)';
    // Another limit than this run's: binned before a restore; this run counts exactly since (see load).
    return under === 0
      ? ' (binned until it resumed from a checkpoint taken with metrics.exact_auc_limit 0, exact since)'
      : ` (binned past metrics.exact_auc_limit ${under} before it resumed from a checkpoint, exact since)`;
  }

  /** Distinct scores the exact cumulative AUC holds (24 bytes each, before the arrays' growth). */
  get exactAucScores(): number {
    return this.distinctScores;
  }

  /** Positives in the histogram (equals `positives`; kept apart so `add` may count in any order). */
  private positivesCounted = 0;

  cumulativeAuc(): number | null {
    const negatives = this.n - this.positives;
    if (this.positives === 0 || negatives === 0) return null;
    return this.won / (this.positives * negatives);
  }

  /** While exact, the same figure by a full pass over the distinct scores (tests compare). */
  cumulativeAucByPass(): number | null {
    const negatives = this.n - this.positives;
    if (this.positives === 0 || negatives === 0 || !this.exact) return null;
    let negBelow = 0;
    let won = 0;
    for (let b = 0; b < bins; b++) {
      const entries = this.exact[b];
      for (let i = 0; i < this.exactSizes[b]!; i++) {
        const p = entries![3 * i + 1]!;
        const q = entries![3 * i + 2]!;
        if (p > 0) won += p * (negBelow + q / 2);
        negBelow += q;
      }
    }
    return won / (this.positives * negatives);
  }

  windowStats(): { n: number; auc: number | null; logloss: number; brier: number; baseRate: number } {
    const count = this.filled;
    let loss = 0;
    let brier = 0;
    let positives = 0;
    for (let i = 0; i < count; i++) {
      loss += this.ringLosses[i]!;
      brier += (this.ringScores[i]! - this.ringLabels[i]!) ** 2;
      positives += this.ringLabels[i]!;
    }
    return {
      n: count,
      auc: exactAuc(this.ringScores, this.ringLabels, count),
      logloss: count ? loss / count : 0,
      brier: count ? brier / count : 0,
      baseRate: count ? positives / count : 0,
    };
  }

  summary(): PrequentialSummary {
    return {
      n: this.n,
      positives: this.positives,
      baseRate: this.n ? this.positives / this.n : 0,
      auc: this.cumulativeAuc(),
      aucExact: this.cumulativeAucExact,
      logloss: this.n ? this.sumLogLoss / this.n : 0,
      brier: this.n ? this.sumBrier / this.n : 0,
      window: this.windowStats(),
    };
  }

  calibrationTable(): CalibrationBin[] {
    return this.calibration.map((bin, i) => ({
      lower: i / this.calibrationBins,
      upper: (i + 1) / this.calibrationBins,
      count: bin[0]!,
      meanScore: bin[0] ? bin[1]! / bin[0]! : 0,
      positiveRate: bin[0] ? bin[2]! / bin[0]! : 0,
    }));
  }

  /** ROC curve points (false positive rate, true positive rate), at most `points` of them. */
  rocCurve(points = 200): { fpr: number[]; tpr: number[] } {
    const negatives = this.n - this.positives;
    const fpr = [0];
    const tpr = [0];
    if (this.positives === 0 || negatives === 0) return { fpr: [0, 1], tpr: [0, 1] };
    let tp = 0;
    let fp = 0;
    const step = Math.max(1, Math.floor(this.n / points));
    let sinceLast = 0;
    for (let b = bins - 1; b >= 0; b--) {
      const p = this.pos[b]!;
      const q = this.neg[b]!;
      if (p === 0 && q === 0) continue;
      tp += p;
      fp += q;
      sinceLast += p + q;
      if (sinceLast >= step || b === 0) {
        fpr.push(fp / negatives);
        tpr.push(tp / this.positives);
        sinceLast = 0;
      }
    }
    if (fpr[fpr.length - 1] !== 1 || tpr[tpr.length - 1] !== 1) {
      fpr.push(1);
      tpr.push(1);
    }
    return { fpr, tpr };
  }

  timelinePoints(): TimelinePoint[] {
    return [...this.timeline];
  }

  /** The state now (a copy: it shares nothing this object changes later). */
  state(): PrequentialState {
    return this.stateOnWrite().read();
  }

  /**
   * The state as of this call, read later (a snapshot's encode parts, while records flow): the call is O(1) in the labels
   * and bins, copying only the counts and the calibration table (its `metrics.calibration_bins` rows); see PrequentialStateCopy.
   * A copy not read yet by the next call, or by a load, is read then.
   */
  stateOnWrite(): PrequentialStateCopy {
    this.copy?.read();
    const { window, calibrationBins, n, positives, sumLogLoss, sumBrier, won, binnedUnder, exact, exactSizes, distinctScores, next, filled, timeline, every, pos, neg, ringScores, ringLabels } = this;
    const calibration = this.calibration.map((bin): [number, number, number] => [bin[0]!, bin[1]!, bin[2]!]);
    // Points are only appended to the timeline, or it is replaced: its first points now stay as they are.
    const points = timeline.length;
    const copy = new PrequentialStateCopy(
      (kept) => {
        const histogram: [number, number, number][] = [];
        for (let b = 0; b < bins; b++) {
          const then = kept.bins.get(b);
          const p = then === undefined ? pos[b]! : then[0];
          const q = then === undefined ? neg[b]! : then[1];
          if (p || q) histogram.push([b, p, q]);
        }
        const scores: number[] = new Array<number>(filled);
        const labels: number[] = new Array<number>(filled);
        for (let i = 0; i < filled; i++) {
          const then = kept.ring.get(i);
          scores[i] = then === undefined ? ringScores[i]! : then[0];
          labels[i] = then === undefined ? ringLabels[i]! : then[1];
        }
        return {
          window,
          calibrationBins,
          n,
          positives,
          sumLogLoss,
          sumBrier,
          calibration,
          histogram,
          auc: { won, exact: exact === null ? null : exactStateOf(exact, exactSizes, distinctScores, kept.exactBins), ...(binnedUnder === undefined ? {} : { binnedUnder }) },
          ring: { scores, labels, next, filled },
          timeline: timeline.slice(0, points),
          every,
        };
      },
      (read) => {
        if (this.copy === read) this.copy = undefined;
      },
    );
    this.copy = copy;
    return copy;
  }

  /** Puts back distinct scores in ascending order (what {@link exactState} wrote, or bin midpoints). */
  private loadExact(scores: ArrayLike<number>, positives: ArrayLike<number>, negatives: ArrayLike<number>): void {
    // Saved by a run that kept more than this one may (a lower limit, or none): binned from here on.
    if (this.exactAucLimit === 0 || scores.length > this.exactAucLimit) return this.dropExact();
    this.exact = new Array<Float64Array | undefined>(bins);
    this.exactSizes.fill(0);
    this.distinctScores = scores.length;
    for (let start = 0; start < scores.length; ) {
      const b = binOf(scores[start]!);
      let end = start + 1;
      while (end < scores.length && binOf(scores[end]!) === b) end++;
      const entries = new Float64Array(3 * Math.max(4, end - start));
      for (let i = start; i < end; i++) {
        entries[3 * (i - start)] = scores[i]!;
        entries[3 * (i - start) + 1] = positives[i]!;
        entries[3 * (i - start) + 2] = negatives[i]!;
      }
      this.exact[b] = entries;
      this.exactSizes[b] = end - start;
      start = end;
    }
  }

  load(state: PrequentialState): void {
    // A state copy in progress reads what it was called at, before it is replaced.
    this.copy?.read();
    if (state.window !== this.window || state.calibrationBins !== this.calibrationBins) throw new Error('saved metrics use another window or calibration size');
    this.n = state.n;
    this.positives = state.positives;
    this.sumLogLoss = state.sumLogLoss;
    this.sumBrier = state.sumBrier;
    state.calibration.forEach((bin, i) => this.calibration[i]!.set(bin));
    this.pos.fill(0);
    this.neg.fill(0);
    this.posTree.fill(0);
    this.negTree.fill(0);
    this.won = 0;
    this.positivesCounted = 0;
    for (const [b, p, q] of state.histogram) {
      this.pos[b] = p;
      this.neg[b] = q;
      bump(this.posTree, b, p);
      bump(this.negTree, b, q);
      this.positivesCounted += p;
    }
    const auc = state.auc;
    this.binnedUnder = auc ? (auc.exact ? auc.binnedUnder : (auc.binnedUnder ?? 0)) : 0;
    if (auc) this.won = auc.won;
    else {
      // A snapshot from before the exact AUC holds only bins: its pairs keep the binned count they had.
      let negBelow = 0;
      for (let b = 0; b < bins; b++) {
        const p = this.pos[b]!;
        const q = this.neg[b]!;
        if (p > 0) this.won += p * (negBelow + q / 2);
        negBelow += q;
      }
    }
    if (auc?.exact) this.loadExact(decodeFloat64s(auc.exact.scores), auc.exact.positives, auc.exact.negatives);
    else if (this.binnedUnder === this.exactAucLimit) this.dropExact();
    else {
      // Binned under another limit than this run's (a config changed across the restore): from here
      // on as this run asks. Each bin's labels go at its midpoint, so pairs among them keep their
      // binned count and later labels are compared exactly with each other and with those midpoints.
      const occupied = state.histogram.filter(([, p, q]) => p > 0 || q > 0).sort((x, y) => x[0] - y[0]);
      const binnedUnder = this.binnedUnder;
      this.loadExact(
        occupied.map(([b]) => (b + 0.5) / bins),
        occupied.map(([, p]) => p),
        occupied.map(([, , q]) => q),
      );
      // Exact from here (within the limit). Any restored label, even of one class only (no pair counted
      // yet), stands at its bin's midpoint, so the pairs later labels make with it are binned too.
      if (this.exact) this.binnedUnder = state.n > 0 ? binnedUnder : undefined;
    }
    this.ringScores.set(state.ring.scores);
    this.ringLabels.set(state.ring.labels);
    this.next = state.ring.next;
    this.filled = state.ring.filled;
    for (let i = 0; i < this.filled; i++) this.ringLosses[i] = logLoss(this.ringScores[i]!, this.ringLabels[i]!);
    this.timeline = state.timeline.map((p) => ({ ...p }));
    this.every = state.every;
  }
}

/**
 * The distinct scores of every bin, ascending, with their counts: `exact[b]`'s first `sizes[b]` triples, or `kept`'s
 * triples for a bin it has (changed since a state copy's call).
 */
function exactStateOf(exact: readonly (Float64Array | undefined)[], sizes: Int32Array, distinct: number, kept: ReadonlyMap<number, Float64Array>): { scores: string; positives: number[]; negatives: number[] } {
  const scores = new Float64Array(distinct);
  const positives: number[] = [];
  const negatives: number[] = [];
  for (let b = 0; b < bins; b++) {
    const then = kept.get(b);
    const entries = then ?? exact[b];
    const size = then === undefined ? sizes[b]! : then.length / 3;
    for (let i = 0; i < size; i++) {
      scores[positives.length] = entries![3 * i]!;
      positives.push(entries![3 * i + 1]!);
      negatives.push(entries![3 * i + 2]!);
    }
  }
  return { scores: encodeFloats(scores), positives, negatives };
}

/** A score's bin of 1/65,536 (scores outside [0, 1] in the end bins): monotone in the score. */
function binOf(score: number): number {
  return Math.min(bins - 1, Math.max(0, Math.floor(score * bins)));
}

/** Fenwick tree: adds `amount` at bin `b` (0-based). */
function bump(tree: Float64Array, b: number, amount = 1): void {
  for (let i = b + 1; i < tree.length; i += i & -i) tree[i]! += amount;
}

/** Fenwick tree: the sum of bins 0..b-1. */
function prefix(tree: Float64Array, b: number): number {
  let sum = 0;
  for (let i = b; i > 0; i -= i & -i) sum += tree[i]!;
  return sum;
}
