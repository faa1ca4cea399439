/**
 * Long work in parts, the event loop turning between them: the one scheduler of the runtime's
 * checkpoint serialiser and hash and of the stages' snapshots and restores. The daemon answers
 * /healthz and /metrics, and Kafka pipelines move on, only between turns: a million users' state
 * snapshotted, serialised or restored in one go held the loop for about a second, long enough for a
 * liveness probe with a 1 s timeout to kill a healthy daemon.
 *
 * Work is a generator that yields where it may pause (`if (turnDue()) yield;`, or partsOf and eachOf,
 * which do that every block of rows), run by inTurns. One clock and one queue for everyone: a part
 * ends after TURN_MS of work, however many snapshots, restores and checkpoints run at once, and their
 * turns queue, so one part runs per turn of the loop (three stages each running a part per turn held
 * it three parts long).
 */
import { setImmediate } from 'node:timers/promises';

/** Work between two turns of the event loop, at most (a block of rows, or a native call, runs past it by its own length). */
export const TURN_MS = 10;
/**
 * Time the run loop (its sources' batches through the stages to the sinks) goes on at most before it
 * lets the event loop turn, where nothing it awaits did (a source that never waits). Longer than
 * TURN_MS: a turn between batches costs throughput, and /healthz answered within 50 ms (and a batch)
 * is soon enough for any probe.
 */
export const RUN_LOOP_TURN_MS = 50;
/** ...or this many rows (partsOf, eachOf), whichever comes first. */
const TURN_ROWS = 65_536;
/** Rows between two looks at the clock. */
const BLOCK = 1024;

/** When the event loop last turned for a part, and the rows handled since. */
let turned = performance.now();
let rowsSinceTurn = 0;
/** The last turn asked for: each comes a turn of the loop after the one asked before it. */
let lastTurn: Promise<void> = Promise.resolve();

/**
 * Whether the current part is done (TURN_MS of work since the last turn, or TURN_ROWS rows by
 * partsOf and eachOf): a generator run by inTurns yields then. By time, not by count: a row costs
 * more in some stages than in others, and ten times more while the code is cold (the first checkpoint).
 */
export function turnDue(): boolean {
  return rowsSinceTurn >= TURN_ROWS || performance.now() - turned >= TURN_MS;
}

/** Resolves a turn of the event loop after the turn asked for before it (by anyone); a new part starts then. */
export async function nextTurn(): Promise<void> {
  const mine = lastTurn.then(() => setImmediate());
  lastTurn = mine;
  await mine;
  turned = performance.now();
  rowsSinceTurn = 0;
}

/** Runs the parts of `work` (yielding where turnDue() said so), the event loop turning between them; resolves to its result. */
export async function inTurns<T>(work: Generator<void, T, void>): Promise<T> {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    await nextTurn();
  }
}

/** Runs `part(from, to)` over the rows [0, n) in blocks, yielding between them once the part is done (turnDue). */
export function* partsOf(n: number, part: (from: number, to: number) => void): Generator<void, void, void> {
  for (let from = 0; from < n; from += BLOCK) {
    if (from > 0 && turnDue()) yield;
    const to = Math.min(n, from + BLOCK);
    part(from, to);
    rowsSinceTurn += to - from;
  }
}

/** `visit` on each of `items` in order, in parts as partsOf (a Map's entries, say). */
export function* eachOf<T>(items: Iterable<T>, visit: (item: T) => void): Generator<void, void, void> {
  let count = 0;
  for (const item of items) {
    if (++count % BLOCK === 0) {
      rowsSinceTurn += BLOCK;
      if (turnDue()) yield;
    }
    visit(item);
  }
}

/** `part(from, to)` over the rows [0, n) in parts, the event loop turning between them (a restore in parts). */
export async function inParts(n: number, part: (from: number, to: number) => void): Promise<void> {
  await inTurns(partsOf(n, part));
}

/**
 * A snapshot taken in two phases (PartedSnapshots.takeCopying): its copy parts read the live state
 * into copies of the stage's own, then return the encode parts, which read those copies only.
 */
export type CopyThenEncode<T> = Generator<void, Generator<void, T, void>, void>;

/**
 * A snapshot's promise (Operator.snapshot) that also says when its parts no longer read the stage's
 * live state: `copied` resolves then (rejects where the copy failed). The runtime holds the sources
 * until `copied`, not until the snapshot resolves: what is left (encoding the copies) runs while
 * records flow.
 */
export interface CopyingSnapshot<T> extends Promise<T> {
  readonly copied: Promise<void>;
}

/** Whether `value` is a snapshot promise that says when it is copied (CopyingSnapshot). */
export function isCopyingSnapshot(value: unknown): value is CopyingSnapshot<unknown> {
  return value instanceof Promise && (value as { copied?: unknown }).copied instanceof Promise;
}

/** One snapshot in parts: its copy parts (which read the live state), then its encode parts (which read its copies), stepped a part at a time; the copy parts all at once by settle. */
class SnapshotInParts<T> {
  private outcome: { value: T } | { error: unknown } | undefined;
  /** The encode parts, once the copy parts returned them. */
  private encoding: Generator<void, T, void> | undefined;
  /** Called once the copy parts are done (or failed). */
  onCopied: ((error?: unknown) => void) | undefined;

  constructor(
    private readonly copying: Generator<void, Generator<void, T, void> | T, void>,
    private readonly twoPhase: boolean,
  ) {}

  get done(): boolean {
    return this.outcome !== undefined;
  }

  /** Whether the copy parts are done: the rest reads no live state. */
  get copied(): boolean {
    return this.encoding !== undefined || this.outcome !== undefined;
  }

  /** The next part (`untilCopied`: every copy part left, the encode parts left to their turns). */
  step(untilCopied: boolean): void {
    if (this.outcome !== undefined) return;
    try {
      for (;;) {
        if (this.encoding === undefined) {
          const next = this.copying.next();
          if (next.done) {
            if (!this.twoPhase) {
              this.outcome = { value: next.value as T };
              this.onCopied?.();
              return;
            }
            this.encoding = next.value as Generator<void, T, void>;
            this.onCopied?.();
            return;
          }
        } else {
          const next = this.encoding.next();
          if (next.done) this.outcome = { value: next.value };
          return;
        }
        if (!untilCopied) return;
      }
    } catch (error) {
      this.outcome = { error };
      this.onCopied?.(error);
    }
  }

  result(): T {
    const outcome = this.outcome!;
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  }
}

/**
 * A stage's snapshots taken in parts (Operator.snapshot returning a promise): `take(parts)` runs the
 * generator's first part now and the others with the event loop turning between them. The snapshot
 * must be the state of the instant snapshot() was called while the parts read the live state, so the
 * stage calls `settle()` before anything changes that state (a record or a watermark that reaches it
 * meanwhile, say from another stage's timer; a restore): it runs the remaining parts at once.
 *
 * `takeCopying(parts)` takes one in two phases: the parts that read the live state (copying what the
 * snapshot needs), then the parts they return, which encode those copies. settle() runs only the copy
 * parts left; the promise's `copied` (CopyingSnapshot) tells the runtime it may let the sources go on.
 */
export class PartedSnapshots {
  private current: SnapshotInParts<unknown> | undefined;

  async take<T>(parts: Generator<void, T, void>): Promise<T> {
    return this.run(new SnapshotInParts<T>(parts, false));
  }

  takeCopying<T>(parts: CopyThenEncode<T>): CopyingSnapshot<T> {
    const snapshot = new SnapshotInParts<T>(parts, true);
    const copied = new Promise<void>((resolve, reject) => {
      snapshot.onCopied = (error) => (error === undefined ? resolve() : reject(error));
    });
    // Awaited by the runtime at the barrier; a failure is the snapshot's own too, and not left unhandled here.
    copied.catch(() => undefined);
    return Object.assign(this.run(snapshot), { copied });
  }

  private async run<T>(snapshot: SnapshotInParts<T>): Promise<T> {
    this.settle();
    this.current = snapshot;
    snapshot.step(false);
    while (!snapshot.done) {
      if (snapshot.copied && this.current === snapshot) this.current = undefined;
      await nextTurn();
      snapshot.step(false);
    }
    if (this.current === snapshot) this.current = undefined;
    return snapshot.result();
  }

  /** Finishes the copy parts of a snapshot in progress now: call it before changing the state it reads. */
  settle(): void {
    const current = this.current;
    if (current === undefined) return;
    this.current = undefined;
    current.step(true);
  }
}
