/**
 * The helper every operator is built on, in the manner of RxJS's own `operate`: per-subscription
 * state lives in the caller's closure, watermarks pass through in order, and an exception thrown
 * while handling one record sends that record to the dead-letter sink instead of ending the stream.
 *
 * Consecutive record operators run fused (`composeOperators`): one subscription for the whole run,
 * and each stage's `emit` calls the next stage's handlers directly, with no RxJS subscriber between.
 */
import { Observable } from 'rxjs';
import { originOf, watermark, type Element, type Watermark } from './events.js';
import { pluginFailure } from './errors.js';
import type { Operator, PluginContext } from './plugin.js';

export type Emit = (element: Element) => void;

export interface RecordHandlers {
  /** Called for every record (not watermarks). Emit zero or more elements. */
  record(record: Element, emit: Emit): void;
  /**
   * Called for every watermark, before it is passed on. `Infinity` is the end of input. Return nothing
   * to pass it on as received; a stage whose own event time lags its input's (it dropped events that
   * moved the sources' watermark) returns the time to pass on instead, holding back the stages after
   * it: never more than the watermark received (the end of input passes whatever is returned). Either
   * way nothing passes unless it is above the last watermark this stage passed, returned or emitted
   * (return -Infinity to pass none). While holding, it may pass a later one from `record` by emitting
   * `watermark(time)` itself, above the last it passed and never above the last received (not
   * checked there: records pay nothing for this).
   */
  watermark?(mark: Watermark, emit: Emit): number | void;
  /** Called when the input completes (end of input or a stop), before completing downstream. */
  complete?(emit: Emit): void;
  /** Called on teardown, whatever the reason: clear timers here. One that throws is reported as the stage's failure (PluginContext.fail). */
  finalize?(): void;
}

/** What `recordOperator` was given: lets the runtime run the stage without its own subscription. */
export interface RecordStage {
  readonly context: PluginContext;
  readonly makeHandlers: () => RecordHandlers;
}

// Symbol.for, as pluginMarker: a plugin built against another copy of the core still fuses.
const recordStageKey: unique symbol = Symbol.for('tributary.recordStage');

/** An operator's `apply` made by `recordOperator`: still a plain RxJS operator, carrying its stage. */
export type RecordOperator = ((input: Observable<Element>) => Observable<Element>) & { readonly [recordStageKey]: RecordStage };

/**
 * Builds the `apply` of an operator from per-record handlers.
 *
 * @example
 * const apply = recordOperator(ctx, () => ({
 *   record(record, emit) { if (record.kind === 'event') emit({ ...record, seen: true }); else emit(record); },
 * }));
 */
export function recordOperator(context: PluginContext, makeHandlers: () => RecordHandlers): RecordOperator {
  const stage: RecordStage = { context, makeHandlers };
  return Object.assign((input: Observable<Element>) => fuse([stage], input), { [recordStageKey]: stage });
}

function recordStageOf(apply: Operator['apply']): RecordStage | undefined {
  return (apply as Partial<RecordOperator>)[recordStageKey];
}

/**
 * Times the hand-over of elements to stages (the runtime's sampled stage latency). Boundary k is the
 * input of stage k; boundary `operators.length` is the output.
 */
export interface StageTimer {
  /** True while a sampled batch runs; read once per element entering a run of stages. */
  readonly sampling: boolean;
  /** `deliver`, timed as boundary `index`. */
  timed(index: number, deliver: Emit): Emit;
}

/**
 * Applies `operators` in order to `input`. Each maximal run of record operators becomes one fused
 * operator; any other operator goes through its own `apply`. With a timer, every boundary is timed:
 * by the fused run it belongs to, else by a probe between RxJS operators.
 */
export function composeOperators(operators: readonly Pick<Operator, 'apply'>[], input: Observable<Element>, timer?: StageTimer): Observable<Element> {
  const stages = operators.map((operator) => recordStageOf(operator.apply));
  let stream = input;
  for (let k = 0; k < operators.length; ) {
    if (stages[k] === undefined) {
      if (timer && (k === 0 || stages[k - 1] === undefined)) stream = probe(stream, k, timer);
      stream = operators[k]!.apply(stream);
      k++;
      continue;
    }
    const first = k;
    while (k < operators.length && stages[k] !== undefined) k++;
    stream = fuse(stages.slice(first, k) as RecordStage[], stream, timer && { timer, first });
  }
  if (timer && (operators.length === 0 || stages[operators.length - 1] === undefined)) stream = probe(stream, operators.length, timer);
  return stream;
}

/** Times boundary `index` between two RxJS operators. */
function probe(input: Observable<Element>, index: number, timer: StageTimer): Observable<Element> {
  return new Observable<Element>((subscriber) => {
    const deliver: Emit = (element) => subscriber.next(element);
    const timed = timer.timed(index, deliver);
    return input.subscribe({
      next: (element) => (timer.sampling ? timed : deliver)(element),
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
  });
}

/**
 * One subscription for a run of record stages: stage k's `emit` is stage k+1's dispatch. A record's
 * exception is caught by its own stage (dead-lettered); an exception in a watermark or complete
 * handler (or in dead-lettering) errors the stream. With timing, a second chain of the same handlers
 * times every hand-over, and the input takes it only while a batch is sampled, so an unsampled
 * element pays no probe.
 */
function fuse(stages: readonly RecordStage[], input: Observable<Element>, timing?: { timer: StageTimer; first: number }): Observable<Element> {
  return new Observable<Element>((subscriber) => {
    // Set on error or teardown: nothing reaches a handler after that (as a closed subscriber ignores next).
    let stopped = false;
    // Set as the stream completes: a record a stage emits after it (from a timer, a promise) reaches
    // nothing, so it is counted, and said once per stage, instead of vanishing without a word.
    let completed = false;
    const afterEnd = stages.map(({ context }) => ({
      counter: context.metrics.counter(
        'records_emitted_after_end_total',
        'Records the stage emitted after its input had ended (from a timer or a promise): nothing takes them, so they are lost. A stage that holds records must say so with ready() until it has emitted them.',
      ),
      said: false,
    }));
    const emittedAfterEnd = (k: number, element: Element): void => {
      if (!completed || element.kind === 'watermark') return;
      const stage = afterEnd[k]!;
      stage.counter.inc();
      if (stage.said) return;
      stage.said = true;
      const { context } = stages[k]!;
      context.logger.warn(
        { stage: context.label, kind: element.kind },
        `${context.label} emitted a record after its input had ended (from a timer or a promise): nothing takes it, so it is lost (counted in records_emitted_after_end_total). A stage that holds records must say so with ready() until it has emitted them`,
      );
    };
    const fail = (error: unknown): void => {
      stopped = true;
      subscriber.error(error);
    };
    const handlers: RecordHandlers[] = [];
    const finalize = (): void => {
      stopped = true;
      for (let k = 0; k < handlers.length; k++) {
        try {
          handlers[k]!.finalize?.();
        } catch (error) {
          // Thrown from a teardown it was lost once the stream had completed (RxJS drops it), and on
          // an unsubscribe it escaped from whichever unsubscribe() ran it: the stage reports it instead.
          stages[k]!.context.fail(new Error(`finalize() threw: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
        }
      }
    };
    try {
      for (const stage of stages) handlers.push(stage.makeHandlers());
    } catch (error) {
      finalize();
      throw error;
    }
    // The last watermark each stage passed on, for one that holds it back (shared by the timed chain):
    // returned from its handler, or emitted by it (from record too), noted as the next stage or the
    // output takes it, so records pay nothing in the stage that emits them.
    const passed = new Float64Array(stages.length).fill(-Infinity);
    const dispatch = (k: number, emit: Emit): Emit => {
      const { context } = stages[k]!;
      const stage = handlers[k]!;
      return (element) => {
        if (stopped) {
          // Handed on by the stage before this one (the input is unsubscribed by now).
          if (k > 0) emittedAfterEnd(k - 1, element);
          return;
        }
        if (element.kind === 'watermark') {
          const received = (element as Watermark).time;
          if (k > 0 && received > passed[k - 1]!) passed[k - 1] = received;
          let held: number | void;
          try {
            held = stage.watermark?.(element as Watermark, emit);
          } catch (error) {
            // The run's error names the stage: a watermark has no record to dead-letter, so it ends the stream.
            fail(pluginFailure('TRIB_ERR_STAGE', context.label, 'failed handling a watermark', error));
            return;
          }
          if (held === undefined) {
            // At or below one it passed already (held back, its own time moved ahead of the watermarks
            // it gets: a stage restored while holding, whose input's watermark starts over): not again.
            if (!(received > passed[k]!)) return;
            passed[k] = received;
            emit(element);
            return;
          }
          // Held back: never ahead of what came in, never back, and the end of input always gets through.
          const time = received === Infinity || !(held < received) ? received : held;
          if (!(time > passed[k]!)) return;
          passed[k] = time;
          emit(time === received ? element : watermark(time));
          return;
        }
        try {
          stage.record(element, emit);
        } catch (error) {
          try {
            context.deadLetter({ reason: `${context.label}: ${(error as Error).message}`, raw: element, origin: originOf(element) });
          } catch (deadLetterError) {
            fail(deadLetterError);
          }
        }
      };
    };
    const last = stages.length - 1;
    const out: Emit = (element) => {
      if (stopped) emittedAfterEnd(last, element);
      else {
        if (element.kind === 'watermark' && (element as Watermark).time > passed[last]!) passed[last] = (element as Watermark).time;
        subscriber.next(element);
      }
    };
    // emits[k] is what stage k's handlers get: the next stage's dispatch, or the output.
    const emits: Emit[] = [];
    let next = out;
    for (let k = stages.length - 1; k >= 0; k--) {
      emits[k] = next;
      next = dispatch(k, next);
    }
    const head = next;
    let enter: Emit = head;
    if (timing) {
      const { timer, first } = timing;
      let timed = timer.timed(first + stages.length, out);
      for (let k = stages.length - 1; k >= 0; k--) timed = timer.timed(first + k, dispatch(k, timed));
      const timedHead = timed;
      enter = (element) => (timer.sampling ? timedHead : head)(element);
    }
    const subscription = input.subscribe({
      next: enter,
      error: (error: unknown) => fail(error),
      complete: () => {
        // In order, each while the later stages are still open: what a complete emits reaches them.
        for (let k = 0; k < handlers.length && !stopped; k++) {
          try {
            handlers[k]!.complete?.(emits[k]!);
          } catch (error) {
            fail(pluginFailure('TRIB_ERR_STAGE', stages[k]!.context.label, 'failed as its input completed', error));
            return;
          }
        }
        completed = true;
        try {
          subscriber.complete();
        } catch (error) {
          fail(error);
        }
      },
    });
    return () => {
      subscription.unsubscribe();
      finalize();
    };
  });
}
