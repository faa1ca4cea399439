/**
 * The helper every operator is built on, in the manner of RxJS's own `operate`: per-subscription
 * state lives in the caller's closure, watermarks pass through in order, and an exception thrown
 * while handling one record sends that record to the dead-letter sink instead of ending the stream.
 */
import { Observable } from 'rxjs';
import { originOf, type Element, type Watermark } from './events.js';
import type { PluginContext } from './plugin.js';

export type Emit = (element: Element) => void;

export interface RecordHandlers {
  /** Called for every record (not watermarks). Emit zero or more elements. */
  record(record: Element, emit: Emit): void;
  /** Called for every watermark, before it is passed on. `Infinity` is the end of input. */
  watermark?(mark: Watermark, emit: Emit): void;
  /** Called when the input completes (end of input or a stop), before completing downstream. */
  complete?(emit: Emit): void;
  /** Called on teardown, whatever the reason: clear timers here. */
  finalize?(): void;
}

/**
 * Builds the `apply` of an operator from per-record handlers.
 *
 * @example
 * const apply = recordOperator(ctx, () => ({
 *   record(record, emit) { if (record.kind === 'event') emit({ ...record, seen: true }); else emit(record); },
 * }));
 */
export function recordOperator(context: PluginContext, makeHandlers: () => RecordHandlers): (input: Observable<Element>) => Observable<Element> {
  return (input) =>
    new Observable<Element>((subscriber) => {
      const handlers = makeHandlers();
      const emit: Emit = (element) => subscriber.next(element);
      const subscription = input.subscribe({
        next: (element) => {
          if (element.kind === 'watermark') {
            handlers.watermark?.(element as Watermark, emit);
            subscriber.next(element);
            return;
          }
          try {
            handlers.record(element, emit);
          } catch (error) {
            context.deadLetter({ reason: `${context.label}: ${(error as Error).message}`, raw: element, origin: originOf(element) });
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          try {
            handlers.complete?.(emit);
            subscriber.complete();
          } catch (error) {
            subscriber.error(error);
          }
        },
      });
      return () => {
        subscription.unsubscribe();
        handlers.finalize?.();
      };
    });
}
