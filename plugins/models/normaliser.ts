/**
 * Online standardisation of feature vectors (Welford's running mean and sample variance, n - 1), clipped to
 * +-5 standard deviations so one outlier cannot blow up a step. It is updated on every predicted
 * sample (no label needed, so no leakage) before the sample is standardised. A feature the sample lacks
 * (one the model knows that its input no longer has) is standardised to 0, i.e. read at its running mean,
 * and leaves that feature's statistics as they were: as River's scaler and VW skip an absent feature,
 * where a raw 0 would shift its mean and variance and give it the value (0 - mean) / sd.
 */
import { spreadBeyondRounding } from '../operators/standardize.js';

export interface NormaliserState {
  n: number;
  mean: number[];
  m2: number[];
  /** Per feature, the samples that lacked it (its own count is n minus these); absent where none did. */
  absent?: number[];
}

export class Normaliser {
  n = 0;
  private mean: Float64Array;
  private m2: Float64Array;
  /** Per feature, the samples that lacked it: made at the first such sample. */
  private absent: Float64Array | undefined;

  constructor(readonly size: number) {
    this.mean = new Float64Array(size);
    this.m2 = new Float64Array(size);
  }

  /**
   * Updates the statistics with `raw` and writes its standardised copy into `out` at `offset`. Features
   * flagged in `missing` (1: the sample lacks it) are written as 0 and left out of the statistics.
   */
  updateAndTransform(raw: ArrayLike<number>, out: Float32Array, offset: number, missing?: Uint8Array): void {
    const all = ++this.n;
    const size = this.size;
    const means = this.mean;
    const m2s = this.m2;
    if (missing !== undefined) this.absent ??= new Float64Array(size);
    const absent = this.absent;
    // The same operations as element by element through the fields, with each value read once.
    for (let i = 0; i < size; i++) {
      if (missing !== undefined && missing[i] === 1) {
        absent![i] = absent![i]! + 1;
        out[offset + i] = 0;
        continue;
      }
      const n = absent === undefined ? all : all - absent[i]!;
      const x = raw[i]!;
      const value = Number.isFinite(x) ? x : 0;
      const delta = value - means[i]!;
      const mean = means[i]! + delta / n;
      means[i] = mean;
      const m2 = m2s[i]! + delta * (value - mean);
      m2s[i] = m2;
      const variance = n > 1 ? m2 / (n - 1) : 0;
      // A fixed floor (sd > 1e-9 until 2026-12-06) zeroed every feature of scale 1e-9 or less and
      // standardised the float32 rounding jitter of a large constant into noise of up to 5 sd.
      const z = spreadBeyondRounding(variance, mean) ? (value - mean) / Math.sqrt(variance) : 0;
      out[offset + i] = z > 5 ? 5 : z < -5 ? -5 : z;
    }
  }

  state(): NormaliserState {
    return { n: this.n, mean: Array.from(this.mean), m2: Array.from(this.m2), ...(this.absent ? { absent: Array.from(this.absent) } : {}) };
  }

  load(state: NormaliserState): void {
    if (state.mean.length !== this.size) throw new Error(`saved normaliser has ${state.mean.length} features, the model ${this.size}`);
    this.n = state.n;
    this.mean = Float64Array.from(state.mean);
    this.m2 = Float64Array.from(state.m2);
    if (state.absent !== undefined && state.absent.length !== this.size) throw new Error(`saved normaliser counts absent values of ${state.absent.length} features, the model has ${this.size}`);
    this.absent = state.absent ? Float64Array.from(state.absent) : undefined;
  }
}
