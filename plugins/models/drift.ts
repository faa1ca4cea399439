/**
 * Drift detectors on the loss stream: Page-Hinkley and ADWIN. Both read one number at a time (the
 * learner feeds block means of the prequential log loss, per label: {@link LossBlocks}) and say when
 * its mean has changed.
 */

/**
 * [block's sum of unit means, units in it, open unit's loss sum, its losses, its key], then, where there
 * are any, the units waiting for losses still to come (see LossBlocks.defer): [key, loss sum, losses] each.
 * How many losses each still waits for is not kept: the learner counts them again from its samples (see load).
 * Then, where there are any, the units that may be labelled again ({@link RelabelableState}); the waiting list is
 * there (maybe empty) whenever they are. Snapshots of each length restore.
 */
export type LossBlocksState =
  | [number, number, number, number, string | null]
  | [number, number, number, number, string | null, [string, number, number][]]
  | [number, number, number, number, string | null, [string, number, number][], RelabelableState[]];

/**
 * A unit that may be labelled again, with the watermark after which it will not be: [key, until, 0] its run
 * not closed yet; [key, until, 1, loss sum, losses] closed into the open block; [key, until, 2] closed into a
 * block the detector has read.
 */
export type RelabelableState = [string, number, 0 | 2] | [string, number, 1, number, number];

/** A unit whose label run has ended while some of its losses are still to come. */
interface WaitingUnit {
  sum: number;
  count: number;
  /** Losses still to come (labels that came before their predictions). */
  outstanding: number;
}

/** A unit that may be labelled again (see LossBlocks.add's `until`). */
interface RelabelableUnit {
  /** The watermark after which no label of it comes any more. */
  until: number;
  /** Where its mean is: not added yet (its run open or waiting), in the open block, or in a block the detector read. */
  block: 'none' | 'open' | 'read';
  /** Its losses' sum and count while its mean is in the open block (it is taken out again if it is labelled again). */
  sum: number;
  count: number;
}

/**
 * Most units kept for a later label (see LossBlocks.add's `until`): past it the oldest is forgotten, and
 * a later label of it counts it again, as before they were kept. Each is about as many bytes as its key.
 */
const maxRelabelable = 500_000;

/**
 * The detectors' input: means of blocks of `size` labels, each label counted once, as the mean loss of
 * the predictions it scored. Many predictions can share one label (an intent session's, all labelled
 * when it ends): their losses rise and fall together, so a block of single losses holds fewer
 * independent values than it counts, and its mean is noisier than a detector reading it assumes
 * (on the demo's stream, 2.4 times: Page-Hinkley fired 13 times in 1.4M labels of a stationary stream,
 * none once the same losses were shuffled). A label's predictions are labelled one after another: a unit
 * is a run of labels with one key (the session, by user and id: two users' sessions of one data id
 * are two labels; a prediction's own id where there is none). A label that came before its prediction
 * is scored when the prediction's batch runs, after other sessions' labels maybe, and in batch order
 * (a, b, a): its unit is told so at the label ({@link defer}), waits for it, and closes once its last
 * loss is in ({@link addDeferred}), so a session is one unit however its losses come.
 * A session labelled again later (a late event reopened it, and its updated summary labels what was
 * predicted since) is one unit too: while its mean is in the open block, the new losses join it there (its
 * mean taken out, and put back over all its losses when its run ends); once the detector has read that
 * block, they are left out of the detector's input (a block's mean cannot be read again, and a second
 * unit would count the session twice). For that a unit is kept after its run, until the `until` its
 * labels give (see add), bounded by {@link maxRelabelable}.
 */
export class LossBlocks {
  private blockSum = 0;
  private blockUnits = 0;
  private unitSum = 0;
  private unitCount = 0;
  private unitKey: string | null = null;
  /** Losses the open unit still waits for. */
  private unitOutstanding = 0;
  /** Units whose run ended with losses still to come, by key. */
  private waiting = new Map<string, WaitingUnit>();
  /** Units that may be labelled again, by key, about in the order of their `until` (see add). */
  private relabelable = new Map<string, RelabelableUnit>();
  /** Keys of the relabelable units whose means are in the open block. */
  private inOpenBlock: string[] = [];

  constructor(private readonly size: number) {}

  /**
   * Adds one prediction's loss, scored at its label; the block's mean when this closed the block's last unit.
   * `until`: the watermark until which `unit` may be labelled again (intent: a late event may reopen its session,
   * whose updated summary labels the predictions made since); it is kept till then, so such a label joins it.
   */
  add(loss: number, unit: string, until?: number): number | undefined {
    const mean = unit === this.unitKey ? undefined : this.startRun(unit);
    this.unitSum += loss;
    this.unitCount++;
    if (until !== undefined) this.keepUntil(unit, until);
    return mean;
  }

  /** A label of `unit` whose prediction is not scored yet: its loss comes later (addDeferred). The block's mean and `until` as add's. */
  defer(unit: string, until?: number): number | undefined {
    const mean = unit === this.unitKey ? undefined : this.startRun(unit);
    this.unitOutstanding++;
    if (until !== undefined) this.keepUntil(unit, until);
    return mean;
  }

  /**
   * The loss of a label that came before its prediction (see defer), or none where the prediction was not
   * a probability (nothing scored); the block's mean when this closed the block's last unit.
   */
  addDeferred(loss: number | undefined, unit: string): number | undefined {
    if (unit === this.unitKey) {
      if (loss !== undefined) {
        this.unitSum += loss;
        this.unitCount++;
      }
      if (this.unitOutstanding > 0) this.unitOutstanding--;
      return undefined;
    }
    const waiting = this.waiting.get(unit);
    // Not waited for (a snapshot of an older build restored): a unit of its own.
    if (waiting === undefined) return loss === undefined ? undefined : this.close(loss);
    if (loss !== undefined) {
      waiting.sum += loss;
      waiting.count++;
    }
    if (--waiting.outstanding > 0) return undefined;
    this.waiting.delete(unit);
    return waiting.count > 0 ? this.closeUnit(unit, waiting.sum, waiting.count) : undefined;
  }

  /**
   * A new session under `unit`'s key (a data session id back): the one before is labelled no more, so it is not kept
   * for a later label (where its mean is, it stays), and, its run still open, that ends; the new one's labels are a
   * unit of their own. A run still waiting for losses is left to them: rename it first ({@link retire}), or the new
   * session's labels take it up. The block's mean when ending the run filled it.
   */
  renew(unit: string): number | undefined {
    const kept = this.relabelable.get(unit);
    if (kept !== undefined) this.forget(unit, kept);
    if (this.unitKey !== unit || this.unitOutstanding > 0) return undefined;
    return this.endRun();
  }

  /** Whether `unit` waits for losses still to come (labels that came before their predictions: see defer). */
  awaits(unit: string): boolean {
    return (this.unitKey === unit && this.unitOutstanding > 0) || this.waiting.has(unit);
  }

  /**
   * The run of `unit` still waiting for losses goes on as `as` (a key no label makes): its losses still to come are
   * added as `as`'s (the caller gives their samples that unit), and a new session under `unit` starts a unit of its own.
   */
  retire(unit: string, as: string): void {
    if (this.unitKey === unit) this.unitKey = as;
    const waiting = this.waiting.get(unit);
    if (waiting === undefined) return;
    this.waiting.delete(unit);
    this.waiting.set(as, waiting);
  }

  /**
   * An erasure request: the units whose key `matches` (a user's sessions) go on under keys `as` makes, keys no label
   * makes, so no key names the user while the losses already counted stay where they are (a block mean cannot be
   * taken back). A later label of such a session, were one to come, starts a unit of its own. Returns how many.
   */
  rekey(matches: (key: string) => boolean, as: () => string): number {
    let rekeyed = 0;
    const renamed = new Map<string, string>();
    const nameOf = (key: string): string => {
      let name = renamed.get(key);
      if (name === undefined) {
        name = as();
        renamed.set(key, name);
        rekeyed++;
      }
      return name;
    };
    if (this.unitKey !== null && matches(this.unitKey)) this.unitKey = nameOf(this.unitKey);
    // Rebuilt in their order: relabelable units are kept about in the order of their `until` (see add).
    const rebuilt = <T>(map: Map<string, T>): Map<string, T> => new Map([...map].map(([key, value]) => [matches(key) ? nameOf(key) : key, value]));
    if ([...this.waiting.keys()].some(matches)) this.waiting = rebuilt(this.waiting);
    if ([...this.relabelable.keys()].some(matches)) this.relabelable = rebuilt(this.relabelable);
    this.inOpenBlock = this.inOpenBlock.map((key) => renamed.get(key) ?? key);
    return rekeyed;
  }

  /**
   * Session `from` was merged into `into` (a late event bridged them): one session, one unit. `from`'s losses join
   * `into`'s unit where both are still in reach: `from`'s run open or waiting for losses, or its mean in the open block
   * (kept for a later label, taken out), and `into`'s run open, waiting, or its mean in the open block (taken out and
   * put back over both once every loss is in). Else, a block the detector read holding either, or one not kept (its
   * labels gave no `until`: intent keeps every session it labels, buyers too, until a merge can no longer come), each
   * stays the unit it was. The first is a bound, not a miss: a mean the detector
   * read cannot be taken back, and the other part is the session's one unit in the blocks not read yet. (A relabel's
   * losses, once its block was read, are left out as they come; each part here was a whole unit before the merge was
   * known: none is dropped.) True when joined: `from`'s losses still to come are then `into`'s (the caller tags their
   * samples so).
   */
  merge(from: string, into: string): boolean {
    if (from === into) return false;
    const kept = this.relabelable.get(from);
    const waitingFrom = this.waiting.get(from);
    let part: WaitingUnit;
    if (this.unitKey === from) part = { sum: this.unitSum, count: this.unitCount, outstanding: this.unitOutstanding };
    else if (waitingFrom !== undefined) part = waitingFrom;
    else if (kept?.block === 'open') part = { sum: kept.sum, count: kept.count, outstanding: 0 };
    else return false;
    const target = this.relabelable.get(into);
    const waiting = this.waiting.get(into);
    if (this.unitKey === into) {
      this.unitSum += part.sum;
      this.unitCount += part.count;
      this.unitOutstanding += part.outstanding;
    } else if (waiting !== undefined) {
      waiting.sum += part.sum;
      waiting.count += part.count;
      waiting.outstanding += part.outstanding;
    } else if (target?.block === 'open' && part.outstanding > 0) {
      // Its mean leaves the open block until `from`'s losses are in: then it closes over both (closeUnit).
      this.takeOutOfOpenBlock(into, target);
      this.waiting.set(into, { sum: target.sum + part.sum, count: target.count + part.count, outstanding: part.outstanding });
    } else if (target?.block === 'open') {
      this.blockSum += (target.sum + part.sum) / (target.count + part.count) - target.sum / target.count;
      target.sum += part.sum;
      target.count += part.count;
    } else return false;
    if (this.unitKey === from) this.resetRun(null);
    else if (waitingFrom !== undefined) this.waiting.delete(from);
    else this.takeOutOfOpenBlock(from, kept!);
    if (kept !== undefined) this.forget(from, kept);
    return true;
  }

  /** Forgets the units kept for a later label whose `until` the watermark `time` has passed (those first kept: see keepUntil). */
  release(time: number): void {
    for (const [key, unit] of this.relabelable) {
      if (unit.until >= time) return;
      this.forget(key, unit);
    }
  }

  /**
   * A run of labels of `unit` starts: the open unit's run has ended. It is complete (added to the block) unless
   * some of its losses are still to come: then it waits. A unit that waits takes up its run again; so does one
   * labelled again whose mean is in the open block (taken out of it).
   */
  private startRun(unit: string): number | undefined {
    const mean = this.endRun();
    const resumed = this.waiting.get(unit);
    const kept = this.relabelable.get(unit);
    if (resumed !== undefined) {
      this.waiting.delete(unit);
      this.resetRun(unit, resumed.sum, resumed.count, resumed.outstanding);
    } else if (kept?.block === 'open') {
      this.takeOutOfOpenBlock(unit, kept);
      this.resetRun(unit, kept.sum, kept.count);
    } else this.resetRun(unit);
    return mean;
  }

  /**
   * The open run ends: complete, its mean goes into the block (the block's mean when that filled it); with losses
   * still to come, it waits for them. No run is open after.
   */
  private endRun(): number | undefined {
    let mean: number | undefined;
    if (this.unitOutstanding > 0) this.waiting.set(this.unitKey!, { sum: this.unitSum, count: this.unitCount, outstanding: this.unitOutstanding });
    else if (this.unitCount > 0) mean = this.closeUnit(this.unitKey!, this.unitSum, this.unitCount);
    this.resetRun(null);
    return mean;
  }

  private resetRun(key: string | null, sum = 0, count = 0, outstanding = 0): void {
    this.unitKey = key;
    this.unitSum = sum;
    this.unitCount = count;
    this.unitOutstanding = outstanding;
  }

  /** A kept unit's mean leaves the open block (its losses kept with it, to be put back over more). */
  private takeOutOfOpenBlock(key: string, kept: RelabelableUnit): void {
    this.blockSum -= kept.sum / kept.count;
    this.blockUnits--;
    this.inOpenBlock.splice(this.inOpenBlock.indexOf(key), 1);
    kept.block = 'none';
  }

  /**
   * A unit's run ended with every loss in: its mean goes into the block, unless a block the detector has read
   * holds it already (labelled again: see the class). The block's mean when that filled it.
   */
  private closeUnit(key: string, sum: number, count: number): number | undefined {
    const kept = this.relabelable.get(key);
    if (kept === undefined) return this.close(sum / count);
    if (kept.block === 'read') return undefined;
    kept.block = 'open';
    kept.sum = sum;
    kept.count = count;
    this.inOpenBlock.push(key);
    return this.close(sum / count);
  }

  /** Adds a complete unit's mean to the block; the block's mean when that filled it. */
  private close(unitMean: number): number | undefined {
    this.blockSum += unitMean;
    if (++this.blockUnits < this.size) return undefined;
    const mean = this.blockSum / this.blockUnits;
    this.blockSum = 0;
    this.blockUnits = 0;
    for (const key of this.inOpenBlock) {
      const kept = this.relabelable.get(key)!;
      kept.block = 'read';
      kept.sum = 0;
      kept.count = 0;
    }
    this.inOpenBlock = [];
    return mean;
  }

  /** Keeps `unit` for a later label until the watermark passes `until` (moved to the end: those kept first go first). */
  private keepUntil(unit: string, until: number): void {
    const kept = this.relabelable.get(unit);
    if (kept !== undefined) {
      if (until <= kept.until) return;
      kept.until = until;
      this.relabelable.delete(unit);
      this.relabelable.set(unit, kept);
      return;
    }
    if (this.relabelable.size >= maxRelabelable) {
      const [oldest, unitKept] = this.relabelable.entries().next().value!;
      this.forget(oldest, unitKept);
    }
    this.relabelable.set(unit, { until, block: 'none', sum: 0, count: 0 });
  }

  private forget(key: string, unit: RelabelableUnit): void {
    this.relabelable.delete(key);
    if (unit.block === 'open') this.inOpenBlock.splice(this.inOpenBlock.indexOf(key), 1);
  }

  state(): LossBlocksState {
    const open: [number, number, number, number, string | null] = [this.blockSum, this.blockUnits, this.unitSum, this.unitCount, this.unitKey];
    if (this.waiting.size === 0 && this.relabelable.size === 0) return open;
    const waiting = [...this.waiting].map(([key, unit]): [string, number, number] => [key, unit.sum, unit.count]);
    if (this.relabelable.size === 0) return [...open, waiting];
    const relabelable = [...this.relabelable].map(([key, unit]): RelabelableState => (unit.block === 'open' ? [key, unit.until, 1, unit.sum, unit.count] : [key, unit.until, unit.block === 'read' ? 2 : 0]));
    return [...open, waiting, relabelable];
  }

  /**
   * Restores a snapshot; `expected` holds a key for each loss still to come (a labelled sample the snapshot
   * holds waiting for its prediction), which a snapshot does not keep. A waiting unit none is expected for
   * (a damaged snapshot) is dropped. A snapshot from before units (`[sum, count]` of single losses) starts the block afresh;
   * one from before units were kept for a later label keeps none.
   */
  load(state: LossBlocksState | [number, number], expected: Iterable<string> = []): void {
    this.unitOutstanding = 0;
    this.waiting = new Map();
    this.relabelable = new Map();
    this.inOpenBlock = [];
    if (state.length !== 5 && state.length !== 6 && state.length !== 7) [this.blockSum, this.blockUnits, this.unitSum, this.unitCount, this.unitKey] = [0, 0, 0, 0, null];
    else {
      [this.blockSum, this.blockUnits, this.unitSum, this.unitCount, this.unitKey] = state;
      if (state.length !== 5) for (const [key, sum, count] of state[5]) this.waiting.set(key, { sum, count, outstanding: 0 });
      if (state.length === 7) {
        for (const saved of state[6]) {
          const [key, until] = saved;
          if (saved[2] === 1) {
            this.relabelable.set(key, { until, block: 'open', sum: saved[3], count: saved[4] });
            this.inOpenBlock.push(key);
          } else this.relabelable.set(key, { until, block: saved[2] === 2 ? 'read' : 'none', sum: 0, count: 0 });
        }
      }
    }
    for (const unit of expected) {
      if (unit === this.unitKey) this.unitOutstanding++;
      else {
        const waiting = this.waiting.get(unit);
        if (waiting) waiting.outstanding++;
        else this.waiting.set(unit, { sum: 0, count: 0, outstanding: 1 });
      }
    }
    for (const [key, unit] of this.waiting) if (unit.outstanding === 0) this.waiting.delete(key);
  }
}

export type DriftDetectorKind = 'page-hinkley' | 'adwin' | 'none';

/** A detector's snapshot; Page-Hinkley's carries no `kind` (snapshots from before ADWIN have none). */
export type DriftState = PageHinkleyState | AdwinState;

export interface DriftDetector {
  /** Adds one value; true when drift is detected. */
  update(value: number): boolean;
  reset(): void;
  state(): DriftState;
  /** Restores a snapshot; one of another detector (the config changed) starts it afresh. */
  load(state: DriftState): void;
}

/** The detector a model's `drift` config names (`none`: Page-Hinkley, never fed, so snapshots keep one shape). */
export function createDriftDetector(config: PageHinkleyConfig & AdwinConfig & { detector: DriftDetectorKind }): DriftDetector {
  return config.detector === 'adwin' ? new Adwin(config) : new PageHinkley(config);
}

function isAdwinState(state: DriftState): state is AdwinState {
  return (state as Partial<AdwinState>).kind === 'adwin';
}

/**
 * Page-Hinkley test: it signals when the mean rises by more than `delta` for long enough that the
 * cumulative excess passes `threshold`. One-sided (a rise in loss) and O(1) per value; its state is
 * four numbers. As River's `drift.PageHinkley` with `mode='up'` and `alpha=1` (no forgetting factor on
 * the cumulative sum): the same detections on the same values (checked against River 0.26.1). Its
 * defaults (config.ts) are for block means of the loss, which vary far less than single values:
 * River's (`threshold` 50) did not fire within 428 blocks of a loss that rose by half, these at the 11th.
 */
export interface PageHinkleyConfig {
  delta: number;
  threshold: number;
  min_instances: number;
}

export interface PageHinkleyState {
  n: number;
  mean: number;
  cumulative: number;
  minimum: number;
}

export class PageHinkley implements DriftDetector {
  private n = 0;
  private mean = 0;
  private cumulative = 0;
  private minimum = 0;

  constructor(private readonly config: PageHinkleyConfig) {}

  /** Adds one loss; true when drift is detected (the test then starts over). */
  update(value: number): boolean {
    this.n++;
    this.mean += (value - this.mean) / this.n;
    this.cumulative += value - this.mean - this.config.delta;
    this.minimum = Math.min(this.minimum, this.cumulative);
    if (this.n >= this.config.min_instances && this.cumulative - this.minimum > this.config.threshold) {
      this.reset();
      return true;
    }
    return false;
  }

  /** Current test statistic (excess over the running minimum). */
  statistic(): number {
    return this.cumulative - this.minimum;
  }

  reset(): void {
    this.n = 0;
    this.mean = 0;
    this.cumulative = 0;
    this.minimum = 0;
  }

  state(): PageHinkleyState {
    return { n: this.n, mean: this.mean, cumulative: this.cumulative, minimum: this.minimum };
  }

  load(state: DriftState): void {
    if (isAdwinState(state)) return this.reset();
    ({ n: this.n, mean: this.mean, cumulative: this.cumulative, minimum: this.minimum } = state);
  }
}

export interface AdwinConfig {
  /** Significance of the cut test: lower, fewer false alarms and later detections. */
  delta: number;
  /** Cuts are tested every `clock` values. */
  clock: number;
  /** Buckets of each size kept before the two oldest merge (the exponential histogram's resolution). */
  max_buckets: number;
  /** Values each side of a cut needs at least. */
  min_window_length: number;
  /** Values before the first test. */
  grace_period: number;
}

/** One row of the exponential histogram: buckets of 2^row values, oldest first (sum and M2 each). */
interface AdwinRow {
  totals: number[];
  variances: number[];
}

export interface AdwinState {
  kind: 'adwin';
  rows: [number[], number[]][];
  width: number;
  total: number;
  variance: number;
  tick: number;
  detected: boolean;
}

/**
 * ADWIN2 (Bifet & Gavaldà 2007) as River's `drift.ADWIN`: a window of recent values kept as an
 * exponential histogram (rows of buckets of 1, 2, 4... values, at most `max_buckets + 1` a row), cut
 * wherever the means of the older and newer parts differ by more than the bound that `delta` gives;
 * the older part is dropped, bucket by bucket, until no cut holds. Memory and a test cost
 * O(max_buckets * log(width)). After a detection the next value starts a fresh window, as River does.
 */
export class Adwin implements DriftDetector {
  private rows: AdwinRow[] = [{ totals: [], variances: [] }];
  /** Values in the window, their sum, and their sum of squared deviations from the mean (M2). */
  private width = 0;
  private total = 0;
  private variance = 0;
  private tick = 0;
  private detected = false;

  constructor(private readonly config: AdwinConfig) {}

  /** Adds one value; true when the window was cut (a drift). */
  update(value: number): boolean {
    if (this.detected) this.reset();
    this.tick++;
    this.insert(value);
    this.detected = this.tick % this.config.clock === 0 && this.width > this.config.grace_period && this.shrink();
    return this.detected;
  }

  /** Values in the window: it shrinks to about the values since the change when a drift is detected. */
  get windowWidth(): number {
    return this.width;
  }

  /** Mean of the window. */
  get mean(): number {
    return this.width === 0 ? 0 : this.total / this.width;
  }

  reset(): void {
    this.rows = [{ totals: [], variances: [] }];
    this.width = 0;
    this.total = 0;
    this.variance = 0;
    this.tick = 0;
    this.detected = false;
  }

  private insert(value: number): void {
    this.rows[0]!.totals.push(value);
    this.rows[0]!.variances.push(0);
    this.width++;
    if (this.width > 1) {
      const deviation = value - this.total / (this.width - 1);
      this.variance += ((this.width - 1) * deviation * deviation) / this.width;
    }
    this.total += value;
    this.compress();
  }

  /** A row over `max_buckets` merges its two oldest buckets into one of the next row, and so on up. */
  private compress(): void {
    for (let r = 0; r < this.rows.length; r++) {
      const row = this.rows[r]!;
      if (row.totals.length <= this.config.max_buckets) return;
      if (r + 1 === this.rows.length) this.rows.push({ totals: [], variances: [] });
      const size = 2 ** r;
      const [u1, u2] = row.totals.splice(0, 2) as [number, number];
      const [v1, v2] = row.variances.splice(0, 2) as [number, number];
      const next = this.rows[r + 1]!;
      next.totals.push(u1 + u2);
      // Chan et al.'s pairwise M2 (both halves hold `size` values), in River's order of operations.
      const difference = u1 / size - u2 / size;
      next.variances.push(v1 + v2 + (size * size * difference * difference) / (size + size));
    }
  }

  /** Drops the oldest bucket (a cut keeps at least `min_window_length` values, so the window never empties). */
  private dropOldest(): void {
    const r = this.rows.length - 1;
    const row = this.rows[r]!;
    const n = 2 ** r;
    const u = row.totals.shift()!;
    const v = row.variances.shift()!;
    this.width -= n;
    this.total -= u;
    const difference = u / n - this.total / this.width;
    this.variance -= v + (n * this.width * difference * difference) / (n + this.width);
    if (row.totals.length === 0 && r > 0) this.rows.pop();
  }

  /** Tests every cut, oldest first; drops the oldest bucket while some cut holds. True if it dropped any. */
  private shrink(): boolean {
    let changed = false;
    let cut = true;
    while (cut) {
      cut = false;
      let n0 = 0;
      let u0 = 0;
      let n1 = this.width;
      let u1 = this.total;
      scan: for (let r = this.rows.length - 1; r >= 0; r--) {
        const totals = this.rows[r]!.totals;
        const size = 2 ** r;
        // Every bucket boundary but the window's newest end is a cut point (as River 0.26; scikit-multiflow skipped each row's newest).
        for (let k = 0; k < totals.length; k++) {
          n0 += size;
          n1 -= size;
          u0 += totals[k]!;
          u1 -= totals[k]!;
          if (r === 0 && k === totals.length - 1) break scan;
          if (n0 >= this.config.min_window_length && n1 >= this.config.min_window_length && this.cutHolds(n0, n1, u0 / n0 - u1 / n1)) {
            changed = cut = true;
            this.dropOldest();
            break scan;
          }
        }
      }
    }
    return changed;
  }

  /** The Hoeffding-Bernstein bound of ADWIN2 on the difference of the two parts' means. */
  private cutHolds(n0: number, n1: number, meanDifference: number): boolean {
    const { delta, min_window_length: minimum } = this.config;
    const deltaPrime = Math.log((2 * Math.log(this.width)) / delta);
    const mRecip = 1 / (n0 - minimum + 1) + 1 / (n1 - minimum + 1);
    const epsilon = Math.sqrt(2 * mRecip * (this.variance / this.width) * deltaPrime) + (2 / 3) * deltaPrime * mRecip;
    return Math.abs(meanDifference) > epsilon;
  }

  state(): AdwinState {
    return {
      kind: 'adwin',
      rows: this.rows.map((row) => [[...row.totals], [...row.variances]]),
      width: this.width,
      total: this.total,
      variance: this.variance,
      tick: this.tick,
      detected: this.detected,
    };
  }

  load(state: DriftState): void {
    // A snapshot of another detector (its config changed since): start afresh.
    if (!isAdwinState(state)) return this.reset();
    this.rows = state.rows.map(([totals, variances]) => ({ totals: [...totals], variances: [...variances] }));
    ({ width: this.width, total: this.total, variance: this.variance, tick: this.tick, detected: this.detected } = state);
  }
}
