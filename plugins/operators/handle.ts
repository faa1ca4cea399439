/**
 * The sessionizer's per-session record, handed to later stages with each event and summary, hidden
 * (a private field of `event.session` and of the summary). A stage keyed by
 * session or by user caches the slot of its own state on it, so only a session's first event pays
 * that stage's Map lookup: the lookups (cache misses in maps of 100k users, and hashing a new session
 * id) were the largest cost of session- and user-features. A stage checks that a cached slot is its
 * own and still holds that session or user, and falls back to its map otherwise (another sessionizer,
 * a restore, an evicted user, a stage between that copies records): every slot is in the map too, so
 * the cache is only ever a shortcut.
 */
import type { SessionContext } from 'tributary';

export interface SessionHandle {
  /** The per-session stage (session-features) whose slot `sessionSlot` is. */
  sessionStage: object | undefined;
  sessionSlot: number;
  /** The per-user stage (user-features) whose slot `userSlot` is. */
  userStage: object | undefined;
  userSlot: number;
  /**
   * The sessionizer keeps the session no more (closed and past its lateness, forgotten early, evicted,
   * or merged into another): no event of it follows. A summary's `keptUntil` says as much once the
   * watermark passes it; this says it sooner (a session forgotten early), and holds where the watermark
   * downstream runs ahead of the sessionizer's.
   */
  readonly dead: boolean;
}

/**
 * An event's session context, carrying its session's handle in a private field: JSON, `Object.keys`,
 * spreads and deep equality see the context fields only (in a literal's order; `outOfOrder` and
 * `merged` only on the rare late events the sessionizer sets them on). A class, not an
 * object literal with a symbol key: that literal takes V8's slow path for computed keys, and this
 * allocation runs for every event.
 */
export class SessionTag implements SessionContext {
  // Declared only: field definitions would first define each as undefined, then the constructor sets it.
  declare id: string;
  declare position: number;
  declare sinceStart: number;
  declare sincePrevious: number;
  declare start: number;
  readonly #handle: SessionHandle;

  constructor(id: string, position: number, sinceStart: number, sincePrevious: number, start: number, handle: SessionHandle) {
    this.id = id;
    this.position = position;
    this.sinceStart = sinceStart;
    this.sincePrevious = sincePrevious;
    this.start = start;
    this.#handle = handle;
  }

  static handleOf(context: SessionContext): SessionHandle | undefined {
    return #handle in context ? (context as SessionTag).#handle : undefined;
  }
}

export function handleOf(context: SessionContext | undefined): SessionHandle | undefined {
  return context === undefined ? undefined : SessionTag.handleOf(context);
}

/** A base class whose constructor returns the object it is given, so a subclass can stamp a private field on any object. */
class Returning {
  constructor(target: object) {
    return target;
  }
}

/**
 * Stamps a session's handle on its summary as a private field: invisible to JSON, `Object.keys`,
 * symbols and deep equality (a summary stays a plain object), and cheaper than defineProperty.
 */
class SummaryStamp extends Returning {
  readonly #handle: SessionHandle;

  private constructor(summary: object, handle: SessionHandle) {
    super(summary);
    this.#handle = handle;
  }

  static stamp(summary: object, handle: SessionHandle): void {
    new SummaryStamp(summary, handle);
  }

  static handleOf(summary: object): SessionHandle | undefined {
    return #handle in summary ? (summary as SummaryStamp).#handle : undefined;
  }
}

/** Puts the session's handle on its summary (hidden), so stages can drop their state by it. */
export function attachHandle(summary: object, handle: SessionHandle): void {
  SummaryStamp.stamp(summary, handle);
}

/** The handle a sessionizer put on its session summary. */
export function summaryHandle(summary: object): SessionHandle | undefined {
  return SummaryStamp.handleOf(summary);
}
