/**
 * A checkpoint body serialised in parts, the event loop turning between them: the daemon answers
 * /healthz and /metrics only between turns, and a million users' checkpoint serialised in one go
 * (with its snapshots, then hashed) held the loop for about a second, long enough for a liveness
 * probe with a 1 s timeout to kill a healthy daemon.
 */
import { createHash } from 'node:crypto';
import { inTurns, nextTurn, turnDue } from '../turns.js';

/** Bytes of a piece of the body (each hashed and written by itself), and characters of a slice of a long string. */
const PIECE = 1 << 20;

/** SHA-256 (hex) of the bytes in order, a piece at a time, the event loop turning between pieces once a part is done (turnDue). */
export async function sha256InParts(pieces: readonly Uint8Array[]): Promise<string> {
  const hash = createHash('sha256');
  for (const [k, piece] of pieces.entries()) {
    if (k > 0 && turnDue()) await nextTurn();
    hash.update(piece);
  }
  return hash.digest('hex');
}

/** `bytes` as pieces of PIECE bytes at most (views, not copies), to hash in parts. */
export function piecesOf(bytes: Uint8Array): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let from = 0; from < bytes.length; from += PIECE) pieces.push(bytes.subarray(from, Math.min(bytes.length, from + PIECE)));
  return pieces;
}

/**
 * Piece buffers of bodies already written, for the next body: a checkpoint's 1 MiB buffers, kept
 * across many turns until written, outlive V8's young generation and are freed only by a full GC,
 * which V8 starts for every 64 MiB of such (external) memory allocated since the last one: fresh
 * buffers for every 28 MiB body took about one full GC a checkpoint. Only buffers made here are
 * taken back, never a caller's own.
 */
const spare: Buffer[] = [];
/** Pieces made here and not handed back yet (reusePieces takes these only, each once). */
const lent = new WeakSet<Uint8Array>();
/** Spare buffers kept at most: the pieces of a 64 MiB body. */
const SPARE_PIECES = 64;

const newPiece = (): Buffer => spare.pop() ?? Buffer.allocUnsafe(PIECE);

/** Takes back the pieces of a body stringifyInParts made once it is written: none of them may be read after. */
export function reusePieces(pieces: readonly Uint8Array[]): void {
  for (const piece of pieces) {
    if (spare.length >= SPARE_PIECES) return;
    if (lent.delete(piece)) spare.push(Buffer.from(piece.buffer, 0, PIECE));
  }
}

/** JSON text already made (a stage's synchronous snapshot, serialised at the instant it was taken), written as it is. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** At most this many values, or about PIECE characters, are stringified natively at once. */
const SLICE = 1024;

/**
 * The text so far as UTF-8, in pieces of about PIECE bytes: written straight into them, so the
 * text is neither joined into strings first nor encoded twice (to hash it, then to write it).
 */
class Pieces {
  readonly pieces: Buffer[] = [];
  private current = newPiece();
  private used = 0;

  /**
   * A whole fragment of JSON text (never half of a surrogate pair: JSON.stringify escapes lone ones).
   * Pieces are filled: each holds a 1 MiB buffer until the body is written, and a checkpoint's
   * buffers, kept across many turns, are freed only by a full GC, which V8 starts for every 64 MiB
   * of such (external) memory: pieces closed half-full (a long string's slice that might not fit)
   * made 41 pieces of a 28 MiB body.
   */
  add(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    if (text.length * 3 <= PIECE - this.used) {
      this.used += this.current.write(text, this.used);
      return;
    }
    const bytes = Buffer.byteLength(text);
    if (bytes <= PIECE - this.used) {
      this.used += this.current.write(text, this.used);
      return;
    }
    if (bytes === text.length) {
      // One byte a character (ASCII: base64 columns, most JSON): split at any character.
      let from = 0;
      while (from < text.length) {
        const room = PIECE - this.used;
        const to = Math.min(text.length, from + room);
        this.used += this.current.write(from === 0 && to === text.length ? text : text.slice(from, to), this.used);
        from = to;
        if (this.used === PIECE) this.close();
      }
      return;
    }
    this.close();
    if (bytes > PIECE) this.pieces.push(Buffer.from(text));
    else this.used += this.current.write(text, this.used);
  }

  close(): void {
    if (this.used === 0) return;
    const piece = this.current.subarray(0, this.used);
    lent.add(piece);
    this.pieces.push(piece);
    this.current = newPiece();
    this.used = 0;
  }
}

const isPlainObject = (value: object): boolean => {
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
};

const hasToJson = (value: object): boolean => typeof (value as { toJSON?: unknown }).toJSON === 'function';

/** `value.toJSON(key)` where it has one, as JSON.stringify calls it. */
const jsonOf = (key: string, value: unknown): unknown =>
  typeof value === 'object' && value !== null && hasToJson(value) ? (value as { toJSON(key: string): unknown }).toJSON(key) : value;

/** What JSON.stringify escapes in a string: quotes, backslashes, control characters, surrogates (lone ones). */
const needsEscape = /["\\\u0000-\u001f\ud800-\udfff]/;

/** Left out of an object, null in an array (as JSON.stringify does). */
const skipped = (value: unknown): boolean => value === undefined || typeof value === 'function' || typeof value === 'symbol';

/** About the length of a primitive's JSON; -1 for an object or a string longer than PIECE. */
function primitiveSize(value: unknown): number {
  if (typeof value === 'string') return value.length <= PIECE ? value.length + 2 : -1;
  return typeof value === 'object' && value !== null ? -1 : 8;
}

/**
 * About the length of JSON.stringify(value) when that is bounded: a primitive, or an array or
 * plain object of at most SLICE primitives; -1 otherwise (walked instead).
 */
function flatSize(value: unknown): number {
  if (typeof value !== 'object' || value === null) return primitiveSize(value);
  if (value instanceof RawJson || hasToJson(value)) return -1;
  let size = 2;
  if (Array.isArray(value)) {
    if (value.length > SLICE) return -1;
    for (let i = 0; i < value.length; i++) {
      const element = primitiveSize(value[i]);
      if (element < 0) return -1;
      size += element + 1;
    }
    return size;
  }
  if (!isPlainObject(value)) return -1;
  let keys = 0;
  for (const key in value) {
    const child = primitiveSize((value as Record<string, unknown>)[key]);
    if (child < 0 || ++keys > SLICE) return -1;
    size += child + key.length + 4;
  }
  return size;
}

/**
 * The text of JSON.stringify(value) as UTF-8 (the same text), in pieces of about PIECE bytes, built
 * in parts with the event loop turning once a part is done (turnDue) or a piece is full: objects and
 * arrays are walked, runs of flat values (flatSize) stringified natively, strings longer than PIECE
 * in slices. RawJson values are written as they are. `value` must be one JSON.stringify makes text
 * of (not undefined, a function or a symbol).
 */
export async function stringifyInParts(value: unknown): Promise<Buffer[]> {
  const out = new Pieces();
  const walking = new Set<object>();
  // A turn once the part is done (turnDue), and at least one per piece.
  let piecesAtTurn = 0;
  const due = (): boolean => out.pieces.length > piecesAtTurn || turnDue();
  function* pause(): Generator<void, void, void> {
    yield;
    piecesAtTurn = out.pieces.length;
  }

  /**
   * A long string, PIECE characters at a time (never between the two halves of a surrogate pair,
   * which JSON keeps as they are). One that JSON writes as it is (base64 columns) is not escaped.
   */
  function* walkString(text: string): Generator<void, void, void> {
    const plain = !needsEscape.test(text);
    out.add('"');
    for (let from = 0; from < text.length; ) {
      let to = Math.min(text.length, from + PIECE);
      const last = text.charCodeAt(to - 1);
      if (to < text.length && last >= 0xd800 && last <= 0xdbff) to--;
      const slice = text.slice(from, to);
      out.add(plain ? slice : JSON.stringify(slice).slice(1, -1));
      from = to;
      if (due()) yield* pause();
    }
    out.add('"');
  }

  /** `value` is toJSON's result already, and not a skipped one. */
  function* walk(value: unknown): Generator<void, void, void> {
    if (value instanceof RawJson) return out.add(value.text);
    if (typeof value === 'string' && value.length > PIECE) return yield* walkString(value);
    if (typeof value !== 'object' || value === null || !(Array.isArray(value) || isPlainObject(value)) || flatSize(value) >= 0) {
      out.add(JSON.stringify(value));
      if (due()) yield* pause();
      return;
    }
    if (walking.has(value)) throw new TypeError('Converting circular structure to JSON');
    walking.add(value);
    if (Array.isArray(value)) {
      out.add('[');
      for (let i = 0; i < value.length; ) {
        // A run of flat elements (SLICE of them, or PIECE characters, at most), stringified at once:
        // holes and skipped values read as null there, as in the whole array.
        let to = i;
        for (let size = 0; to < value.length && to - i < SLICE && size < PIECE; to++) {
          const element = flatSize(value[to]);
          if (element < 0) break;
          size += element + 1;
        }
        if (to > i) {
          if (i > 0) out.add(',');
          out.add(JSON.stringify(value.slice(i, to)).slice(1, -1));
          i = to;
          if (due()) yield* pause();
          continue;
        }
        if (i > 0) out.add(',');
        const element = jsonOf(String(i), value[i]);
        if (skipped(element)) out.add('null');
        else yield* walk(element);
        i++;
      }
      out.add(']');
    } else {
      out.add('{');
      let first = true;
      for (const name of Object.keys(value)) {
        const child = jsonOf(name, (value as Record<string, unknown>)[name]);
        if (skipped(child)) continue;
        out.add(`${first ? '' : ','}${JSON.stringify(name)}:`);
        first = false;
        yield* walk(child);
      }
      out.add('}');
    }
    walking.delete(value);
  }

  await inTurns(walk(jsonOf('', value)));
  out.close();
  return out.pieces;
}
