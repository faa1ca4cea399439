/**
 * `gru`: a GRU over the session's last events (embedded event type and hashed category, time
 * deltas, price), its final state joined with the event's feature vector, then a logistic output.
 * Written with plain ops (not tf.layers) so its parameters and optimiser state serialise
 * synchronously like the other models'.
 */
import type * as TF from '@tensorflow/tfjs';
import { tf } from './backend.js';
import { OnlineModel, glorot, inputMatrix, type Batch, type InputRows, type ModelConfig } from './model.js';
import type { OptimizerConfig } from './params.js';

/**
 * Event type ids: 0 is padding, the last id takes every other type. A Map, not an object: a type is
 * data, and an object's lookup of `constructor` or `__proto__` finds its prototype's members.
 */
export const eventTypeIds: ReadonlyMap<string, number> = new Map([
  ['view', 1],
  ['cart', 2],
  ['remove_from_cart', 3],
  ['purchase', 4],
]);
export const eventTypeVocabulary = 6;
/** Numeric features per step: log time since the previous event, log time since the start, log price. */
export const stepFeatures = 3;
const typeDim = 4;
const categoryDim = 8;

export class GruModel extends OnlineModel {
  readonly kind = 'gru' as const;

  /** Where it reads the features (see remapInputRows): the output's rows after the GRU state's `units`, one each. */
  static inputRows(config: ModelConfig): InputRows[] {
    return [{ param: 'wout', from: config.units }];
  }

  constructor(inputs: number, config: ModelConfig, optimizer: OptimizerConfig) {
    super(inputs, config, optimizer);
    const u = config.units;
    const stepIn = typeDim + categoryDim + stepFeatures;
    this.params.add('embType', tf.randomNormal([eventTypeVocabulary, typeDim], 0, 0.1, 'float32', config.seed + 1));
    this.params.add('embCategory', tf.randomNormal([config.category_buckets + 2, categoryDim], 0, 0.1, 'float32', config.seed + 2));
    this.params.add('wx', glorot(stepIn, 3 * u, config.seed + 3));
    this.params.add('wzr', glorot(u, 2 * u, config.seed + 4));
    this.params.add('wh', glorot(u, u, config.seed + 5));
    this.params.add('bx', tf.zeros([3 * u]));
    // Zero output weights: it starts predicting the prior (see mlp.ts).
    this.params.add('wout', tf.zeros([u + inputs, 1]));
    this.params.add('bout', this.initialBias());
    this.ready();
  }

  protected logits(batch: Batch): TF.Tensor1D {
    const seq = batch.seq;
    if (!seq) throw new Error('gru needs event sequences');
    const { n } = batch;
    const L = seq.length;
    const u = this.config.units;
    const types = tf.tensor2d(seq.types, [n, L], 'int32');
    const categories = tf.tensor2d(seq.categories, [n, L], 'int32');
    const steps = tf.tensor3d(seq.steps, [n, L, stepFeatures], 'float32');
    // Embeddings as one-hot products, not tf.gather: gather's gradient (UnsortedSegmentSum) has no WASM kernel.
    const embed = (ids: TF.Tensor2D, table: TF.Tensor): TF.Tensor3D =>
      tf.oneHot(ids.reshape([n * L]), table.shape[0]!).cast('float32').matMul(table).reshape([n, L, table.shape[1]!]) as TF.Tensor3D;
    const x = tf.concat([embed(types, this.params.get('embType')), embed(categories, this.params.get('embCategory')), steps], 2);
    // Input projections of every step in one matMul; the recurrence then needs two per step.
    const projected = x.reshape([n * L, -1]).matMul(this.params.get('wx')).add(this.params.get('bx')).reshape([n, L, 3 * u]);
    // tf.unstack of one step has a broken gradient (its stack gets no array): reshape that one instead.
    const byStep = (t: TF.Tensor3D): TF.Tensor2D[] => (L === 1 ? [t.reshape([n, t.shape[2]!])] : (tf.unstack(t, 1) as TF.Tensor2D[]));
    const inputsByStep = byStep(projected as TF.Tensor3D);
    const masks = byStep(types.greater(0).cast('float32').reshape([n, L, 1]) as TF.Tensor3D);
    const wzr = this.params.get('wzr');
    const wh = this.params.get('wh');
    let h: TF.Tensor2D = tf.zeros([n, u]);
    for (let t = 0; t < L; t++) {
      const [xz, xr, xh] = tf.split(inputsByStep[t]!, 3, 1) as [TF.Tensor2D, TF.Tensor2D, TF.Tensor2D];
      const [hz, hr] = tf.split(h.matMul(wzr), 2, 1) as [TF.Tensor2D, TF.Tensor2D];
      const z = tf.sigmoid(xz.add(hz));
      const r = tf.sigmoid(xr.add(hr));
      const candidate = tf.tanh(xh.add(r.mul(h).matMul(wh)));
      // Padding steps (mask 0) leave the state as it was.
      h = h.add(z.mul(candidate.sub(h)).mul(masks[t]!)) as TF.Tensor2D;
    }
    const joined = batch.d > 0 ? tf.concat([h, inputMatrix(batch)], 1) : h;
    return joined.matMul(this.params.get('wout')).add(this.params.get('bout')).reshape([n]) as TF.Tensor1D;
  }
}
