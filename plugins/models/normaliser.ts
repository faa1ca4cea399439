/**
 * Online standardisation of feature vectors (Welford's running mean and variance), clipped to
 * +-5 standard deviations so one outlier cannot blow up a step. It is updated on every predicted
 * sample (no label needed, so no leakage) before the sample is standardised.
 */
export interface NormaliserState {
  n: number;
  mean: number[];
  m2: number[];
}

export class Normaliser {
  n = 0;
  private mean: Float64Array;
  private m2: Float64Array;

  constructor(readonly size: number) {
    this.mean = new Float64Array(size);
    this.m2 = new Float64Array(size);
  }

  /** Updates the statistics with `raw` and writes its standardised copy into `out` at `offset`. */
  updateAndTransform(raw: ArrayLike<number>, out: Float32Array, offset: number): void {
    this.n++;
    for (let i = 0; i < this.size; i++) {
      const value = Number.isFinite(raw[i]!) ? raw[i]! : 0;
      const delta = value - this.mean[i]!;
      this.mean[i]! += delta / this.n;
      this.m2[i]! += delta * (value - this.mean[i]!);
      const sd = this.n > 1 ? Math.sqrt(this.m2[i]! / (this.n - 1)) : 0;
      const z = sd > 1e-9 ? (value - this.mean[i]!) / sd : 0;
      out[offset + i] = z > 5 ? 5 : z < -5 ? -5 : z;
    }
  }

  state(): NormaliserState {
    return { n: this.n, mean: Array.from(this.mean), m2: Array.from(this.m2) };
  }

  load(state: NormaliserState): void {
    if (state.mean.length !== this.size) throw new Error(`saved normaliser has ${state.mean.length} features, the model ${this.size}`);
    this.n = state.n;
    this.mean = Float64Array.from(state.mean);
    this.m2 = Float64Array.from(state.m2);
  }
}
