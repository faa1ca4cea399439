/**
 * A model a plugin brings (`defineModel`, see define.ts) behind the {@link Model} the learner drives, so a
 * user's scorer gets what the built-in models get (label join, label buffer, prequential scores, metrics,
 * reports, snapshots) from the same code. It sees raw feature values, not standardised ones: a hand-written
 * rule reads "carts so far" as a count.
 */
import type { Batch, Model, ModelState } from './model.js';
import { SkippedValues, type NormaliserState } from './normaliser.js';
import type { CustomModel } from './custom-model.js';

export type { CustomModel, CustomModelSource, ModelContext } from './custom-model.js';

/** A custom model as the learner's {@link Model}: rows without the ones column, predicted at once on the host. */
export class CustomModelAdapter implements Model {
  /** No optimiser of the learner's to turn: drift actions are not offered to custom models. */
  readonly optimizer = { learningRate: 0, reset(): void {} };
  /** Whether it has a `learn`: without one, the learner queues no labels for it. */
  readonly learns: boolean;

  constructor(
    readonly kind: string,
    readonly inputs: number,
    private readonly model: CustomModel,
  ) {
    this.learns = typeof model.learn === 'function';
  }

  predictRow(rows: Float32Array, offset: number): number {
    return this.model.predict(rows.subarray(offset, offset + this.inputs));
  }

  predictProbaMany(batch: Batch): Float32Array {
    const scores = new Float32Array(batch.n);
    for (let i = 0; i < batch.n; i++) scores[i] = this.predictRow(batch.x!, i * batch.d);
    return scores;
  }

  learnMany(batch: Batch, labels: Float32Array): void {
    if (batch.n === 0 || !this.model.learn) return;
    this.model.learn(batch.x!.subarray(0, batch.n * batch.d), labels);
  }

  state(): ModelState {
    // A copy: a model may give its live weights, which it changes as it learns while a checkpoint
    // taken at this instant is serialised (the sources go on meanwhile).
    const given = this.model.state?.();
    let custom: unknown;
    try {
      custom = structuredClone(given);
    } catch {
      // Not cloneable (a function in it): as given, for the checkpoint's check to name what JSON would not keep.
      custom = given;
    }
    return { kind: this.kind, inputs: this.inputs, params: {}, optimizer: { kind: 'sgd', learningRate: 0, step: 0, slots: {} }, ...(custom === undefined ? {} : { custom }) };
  }

  load(state: ModelState): void {
    if (state.kind !== this.kind) throw new Error(`saved model is ${state.kind}, this one is ${this.kind}`);
    if (state.inputs !== this.inputs) throw new Error(`saved model takes ${state.inputs} features, this one ${this.inputs}`);
    if (state.custom === undefined) return;
    if (!this.model.load) throw new Error(`saved ${this.kind} model has a state, and this one has no load() to take it`);
    this.model.load(state.custom);
  }

  dispose(): void {}
}

/**
 * The learner's feature transform for custom models: raw values (non-finite ones as 0), nothing learnt.
 * A feature the sample lacks is 0 too: there is no running mean to read it at. Both are counted, as the
 * normaliser counts them.
 */
export class RawFeatures {
  n = 0;
  readonly skipped: SkippedValues;

  constructor(readonly size: number) {
    this.skipped = new SkippedValues(size);
  }

  updateAndTransform(raw: ArrayLike<number>, out: Float32Array, offset: number, missing?: Uint8Array): void {
    this.n++;
    for (let i = 0; i < this.size; i++) {
      const x = raw[i]!;
      if (missing !== undefined && missing[i] === 1) this.skipped.countAbsent(i);
      else if (!Number.isFinite(x)) this.skipped.countNonFinite(i);
      else {
        out[offset + i] = x;
        continue;
      }
      out[offset + i] = 0;
    }
  }

  state(): NormaliserState {
    return { n: this.n, mean: [], m2: [], ...this.skipped.state() };
  }

  load(state: NormaliserState): void {
    this.n = state.n;
    this.skipped.load(state);
  }
}
