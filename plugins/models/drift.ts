/**
 * Page-Hinkley test on the loss stream: it signals when the mean loss rises by more than `delta`
 * for long enough that the cumulative excess passes `threshold`. Cheap (O(1) per label) and, unlike
 * ADWIN, its state is four numbers, which keeps snapshots small.
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

export class PageHinkley {
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

  load(state: PageHinkleyState): void {
    ({ n: this.n, mean: this.mean, cumulative: this.cumulative, minimum: this.minimum } = state);
  }
}
