/**
 * Reading gzip data up to damage: the file source's reader (a file, a FIFO) and the file sink's check of
 * the end of a file it appends to share it, so what one reads of a damaged file is what the other keeps.
 */
// A namespace import: zlib.crc32 is there only from Node 20.15 (a named import of it would fail to load before).
import * as zlib from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { countNewlines } from './io.js';

/**
 * Where gzip data is damaged: the compressed byte the damage is at, what it is (zlib's words), and the
 * text after its last whole line handed on (of a member whose CRC failed, or whose deflate data is
 * corrupt: all of its text held back).
 */
export interface GzipDamage {
  byte: number;
  problem: string;
  text: Buffer;
  /**
   * A member whose CRC failed ('incorrect data check') or whose deflate data is corrupt, of which text went
   * on before the damage (past the hold bound, or held past `maxHoldMs`): the bytes and line ends of it
   * (unchecked: possibly wrong), a line it ended unended (longer than the held text's bound) counted as
   * ended at the damage, as in `lineEndsBefore`. Absent: none did.
   */
  unchecked?: { bytes: number; lineEnds: number };
  /**
   * The line ends handed on before the damage (the damage is after that line; a line of more than the
   * held text's bound, handed on unended, is ended at the damage and counted).
   */
  lineEndsBefore: number;
  /**
   * `text` begins with the rest of line `lineEndsBefore` (a line longer than the held text's bound, handed
   * on unended and ended at the damage): up to its first line end, it is no line of its own.
   */
  continuesLine?: true;
  /**
   * With GunzipUpToDamageOptions.resync: the compressed byte of the member reading went on at (told as
   * its text goes on, or its CRC checks). Absent: no member follows, the rest of the input is skipped.
   */
  resumedAt?: number;
}

const GZIP_HEADER_FLAGS = { extra: 4, name: 8, comment: 16, headerCrc: 2 } as const;

/** The most text after the last line end that gunzipUpToDamage holds back for a damage's dead letter. */
const GZIP_HELD_TEXT_BYTES = 64 << 10;

/**
 * The most text of a member held back until its CRC checks (GunzipUpToDamageOptions.holdUnchecked's
 * default): the file sink's members end at a flush once they hold 4 MiB of text, so its members are
 * checked whole; past this, a member's text goes on unchecked (a foreign file may be one member of gigabytes).
 */
export const GZIP_HELD_MEMBER_BYTES = 16 << 20;

/**
 * The compressed bytes of a member kept (its last ones, past this): where a search for the next member goes
 * back to after damage (zlib may have taken in the next member's header in a call that did not fail), and,
 * while they are its start, what it is inflated again from where `readFrom` cannot (a FIFO). A file sink's
 * member of 4 MiB of JSON text is 0.5-1 MiB compressed.
 */
const GZIP_RETAINED_MEMBER_BYTES = 4 << 20;

/** An InflateRaw fed a piece at a time: the text of each piece, and whether the deflate data ended or failed in it. */
class RawInflater {
  private readonly inflate = zlib.createInflateRaw({ finishFlush: zlib.constants.Z_SYNC_FLUSH });
  private readonly text: Buffer[] = [];
  private wake: (() => void) | undefined;
  ended = false;
  failure: Error | undefined;

  constructor() {
    this.inflate.on('data', (text: Buffer) => void this.text.push(text));
    this.inflate.on('end', () => ((this.ended = true), this.wake?.()));
    this.inflate.on('error', (error: Error) => ((this.failure = error), this.wake?.()));
  }

  /** The compressed bytes inflated: those of zlib's calls that returned, none of the one that failed. */
  get consumed(): number {
    return this.inflate.bytesWritten;
  }

  /** The text inflated from `piece` (undefined: the input's end). */
  async feed(piece: Buffer | undefined): Promise<Buffer[]> {
    const settled = new Promise<void>((resolve) => (this.wake = resolve));
    if (piece === undefined) this.inflate.end();
    else this.inflate.write(piece, () => this.wake?.());
    await settled;
    return this.text.splice(0);
  }

  destroy(): void {
    this.inflate.destroy();
  }
}

export interface GunzipUpToDamageOptions {
  /** Told where the data is damaged; the text ends there. */
  onDamage?: (damage: GzipDamage) => void;
  /**
   * The same data again, from a byte (a file read again): corrupt deflate data is then inflated again a
   * byte at a time, for the text of zlib's failing call. Without it (a FIFO), the member's compressed
   * bytes read so far are kept for that, up to GZIP_RETAINED_MEMBER_BYTES; past them, the failing call's
   * text (up to 16 KB) is lost.
   */
  readFrom?: (byte: number) => AsyncIterable<Buffer>;
  /** Told, at an end with no damage, the byte after the last member: zero padding after it is not counted. */
  onEnd?: (membersEnd: number) => void;
  /**
   * The most text of a member held back until its CRC is checked (default GZIP_HELD_MEMBER_BYTES; 0: none,
   * text goes on as it is inflated). A member whose CRC fails, or whose deflate data turns out corrupt
   * (zlib may inflate garbage before it fails: a member cut short and followed by another, a corrupt
   * block), gives its held text to `onDamage`, not to the reader; past the bound, the text held goes on
   * unchecked, and the damage says how much did (GzipDamage.unchecked). Text before the input's end (a
   * cut; a file still being written) goes on: it is what was compressed, as far as it goes.
   */
  holdUnchecked?: number;
  /**
   * The longest, in milliseconds, that held text waits on the input for its member's CRC (default: no
   * limit). For a live stream (a FIFO): a writer's member may take long to end (the file sink's ends at
   * 4 MiB of text, or when idle; a writer may pause between its deflate data's end and its trailer), and
   * its lines should not wait for that; past this, the held text goes
   * on unchecked, as past `holdUnchecked`. Only time spent waiting on the input counts, all of it since the
   * first of the text was held: a reader behind its input (a writer streaming a file, however slow the
   * machine) has the member's end to come without waiting and checks it whole; a writer that pauses has
   * the lines within this of its pausing, and one that writes a little at a time (every 100 ms, for good)
   * has them once its pauses add up to this.
   */
  maxHoldMs?: number;
  /**
   * After damage that is not at the input's end, search on for a member's header (1f 8b 08, flag bits
   * 5-7 clear) and read on from it: the file sink writes a member per flush, so a damaged one in the
   * middle of a file costs its own lines only. A damaged member is searched from its start + 1 (its last
   * GZIP_RETAINED_MEMBER_BYTES, for a longer one): zlib may have taken in the next member's header (a
   * member cut short, the next one after it) in a call that did not fail. Each range read past is told
   * to `onDamage` (with its `resumedAt`) before any text after it goes on; a match that is no member (it
   * fails to inflate or its CRC) is read past too, in the same range. Default false: the text ends at the first damage.
   */
  resync?: boolean;
}

/** Where in `bytes`, from `from`, a gzip member's header may start: its magic and deflate, flag bits 5-7 clear. -1: none. */
function headerCandidate(bytes: Buffer, from: number): number {
  for (let at = bytes.indexOf(0x1f, from); at >= 0 && at + 1 < bytes.length; at = bytes.indexOf(0x1f, at + 1)) {
    if (bytes[at + 1] !== 0x8b) continue;
    if (at + 2 < bytes.length && bytes[at + 2] !== 8) continue;
    if (at + 3 < bytes.length && (bytes[at + 3]! & 0xe0) !== 0) continue;
    return at;
  }
  // A last 0x1f may start one that the next bytes end.
  return bytes.length > 0 && bytes[bytes.length - 1] === 0x1f ? bytes.length - 1 : -1;
}

/**
 * Gzip data's text, member after member, up to its damage (told to `onDamage`; the text then ends).
 * createGunzip drops the text its failing call decoded (up to 16 KB before junk after a member, a wrong
 * CRC, a cut): here members are inflated raw (their own end known) and their headers and trailers read
 * as they come, so all of it comes out. Corrupt deflate data fails one of zlib's calls, whose text Node
 * drops too: `readFrom` inflates the member again, a byte at a time from where that call started. Zero
 * bytes after the last member (a tar or dd block's padding) are passed over, as gzip(1) does. What
 * follows the last whole line before the damage is not handed on, but given with it.
 */
export async function* gunzipUpToDamage(compressed: AsyncIterable<Buffer>, options: GunzipUpToDamageOptions = {}): AsyncGenerator<Buffer> {
  const { onDamage, readFrom, onEnd, holdUnchecked = GZIP_HELD_MEMBER_BYTES, maxHoldMs, resync = false } = options;
  const input = compressed[Symbol.asyncIterator]();
  let pending: Buffer = Buffer.alloc(0); // read, not yet used
  let at = 0; // the compressed byte pending[0] is
  let inputEnded = false;
  let members = 0;
  let membersEnd = 0; // the byte after the last member's trailer
  let tail: Buffer = Buffer.alloc(0); // text after the last line end handed on
  /** The input's next piece put after what is pending (its end: inputEnded). */
  const take = (next: IteratorResult<Buffer>): void => {
    if (next.done === true) inputEnded = true;
    else pending = pending.length === 0 ? next.value : Buffer.concat([pending, next.value]);
  };
  /** Reads until `bytes` are pending, or the input ends; whether they are. */
  const fill = async (bytes: number): Promise<boolean> => {
    while (pending.length < bytes && !inputEnded) take(await input.next());
    return pending.length >= bytes;
  };
  /** {@link fill}, while a member's text is held: past maxHoldMs of waiting on the input, the held text goes on unchecked (yielded). */
  async function* fillHolding(bytes: number): AsyncGenerator<Buffer, boolean> {
    while (pending.length < bytes && !inputEnded) take(yield* nextHolding());
    return pending.length >= bytes;
  }
  /**
   * The input's next piece, waited for while a member's text may be held: the wait counts towards
   * maxHoldMs, and once the held text has waited that long in all, it goes on unchecked (yielded) while
   * the wait goes on.
   */
  async function* nextHolding(): AsyncGenerator<Buffer, IteratorResult<Buffer>> {
    const waitedFrom = performance.now();
    const waiting = input.next();
    const left = holdLeft();
    if (left !== undefined && (left <= 0 || (await outwaits(waiting, left)))) {
      // Awaited below; a reader that stops at this yield leaves it to reject (a destroyed input) unawaited.
      waiting.catch(() => undefined);
      yield* handOn(releaseUnchecked());
    }
    const next = await waiting;
    // Nothing is held after a release above: only a wait with text held throughout counts.
    if (held.length > 0) heldWaited += performance.now() - waitedFrom;
    return next;
  }
  // The line ends handed on so far, and whether the last text handed on ended a line.
  let lineEnds = 0;
  let lineEnded = true;
  /** A damaged range read past (resync), told when the text after it goes on; and whether the member read now is the one found after it. */
  let skipped: GzipDamage | undefined;
  let found = false;
  const tell = (): void => {
    if (skipped !== undefined) onDamage?.(skipped);
    skipped = undefined;
    found = false;
  };
  /** Text going on: the damaged range before it told first, a line a damage cut ended, its line ends counted. */
  const handOn = (pieces: Buffer[]): Buffer[] => {
    if (pieces.length === 0) return pieces;
    tell();
    if (!lineEnded) pieces.unshift(Buffer.from('\n'));
    for (const piece of pieces) lineEnds += countNewlines(piece);
    const last = pieces[pieces.length - 1]!;
    if (last.length > 0) lineEnded = last[last.length - 1] === 10;
    return pieces;
  };
  /**
   * Damage found (its text and byte): with `resync`, reading goes on at the next member's header from
   * `searchFrom` (undefined: none can follow, the input ended), the range told when text after it goes
   * on; else (or none found) it is told now and the text ends. A damaged member's search goes back to its
   * start + 1 (`rewound`: the bytes from there, or from the first still kept, on): the next member may
   * start inside what was read of it. A damaged member found after damage joins its range. Returns
   * whether reading goes on.
   */
  const damagedAt = async (damage: Omit<GzipDamage, 'lineEndsBefore'>, searchFrom: number | undefined, rewound?: { at: number; bytes: Buffer }): Promise<boolean> => {
    let range: GzipDamage;
    if (found && skipped !== undefined) {
      const { resumedAt: _, ...before } = skipped;
      range = { ...before, text: damage.text.length > 0 ? Buffer.concat([skipped.text, damage.text]) : skipped.text };
    } else {
      // A line handed on unended is ended here: counted before the damage, and among the unchecked lines where they were its.
      const cut = lineEnded ? 0 : 1;
      const unchecked = damage.unchecked === undefined ? {} : { unchecked: { ...damage.unchecked, lineEnds: damage.unchecked.lineEnds + cut } };
      range = { ...damage, ...unchecked, ...(cut > 0 && damage.text.length > 0 ? { continuesLine: true as const } : {}), lineEndsBefore: lineEnds + cut };
    }
    if (rewound !== undefined) {
      pending = rewound.bytes;
      at = rewound.at;
      searchFrom = rewound.at;
    }
    skipped = undefined;
    found = false;
    tail = Buffer.alloc(0);
    held = [];
    heldBytes = 0;
    heldWaited = 0;
    unchecked = { bytes: 0, lineEnds: 0 };
    if (resync && searchFrom !== undefined) {
      pending = pending.subarray(searchFrom - at);
      at = searchFrom;
      for (;;) {
        const candidate = headerCandidate(pending, 0);
        if (candidate < 0) {
          at += pending.length;
          pending = Buffer.alloc(0);
          if (!(await fill(1))) break;
          continue;
        }
        pending = pending.subarray(candidate);
        at += candidate;
        if (!(await fill(4))) break; // the input ends inside it: no member
        if (headerCandidate(pending.subarray(0, 4), 0) === 0) {
          skipped = { ...range, resumedAt: at };
          found = true;
          return true;
        }
        pending = pending.subarray(1);
        at += 1;
      }
    }
    onDamage?.(range);
    return false;
  };
  /** Damage in a member's header at `start`: a search goes on from the byte after it (its bytes are all still pending). */
  const damagedHeader = (start: number, problem: string): Promise<boolean> => damagedAt({ byte: start, problem, text: tail }, start + 1);
  // The current member's whole lines, held until its CRC checks; and what of its text went on before.
  let held: Buffer[] = [];
  let heldBytes = 0;
  let heldWaited = 0; // milliseconds the held text has waited on the input (for maxHoldMs)
  let unchecked = { bytes: 0, lineEnds: 0 };
  // Handed on in the pieces they were inflated in: one buffer of 16 MiB would be split into lines at once downstream.
  const release = (): Buffer[] => {
    const pieces = held;
    held = [];
    heldBytes = 0;
    heldWaited = 0;
    return pieces;
  };
  /** The held text, to go on before its member is checked: counted as unchecked. */
  const releaseUnchecked = (): Buffer[] => {
    const pieces = release();
    for (const piece of pieces) {
      unchecked.bytes += piece.length;
      unchecked.lineEnds += countNewlines(piece);
    }
    return pieces;
  };
  /** Whole lines of a member: held, or handed on (returned) past the bound. */
  const hold = (whole: Buffer): Buffer[] => {
    held.push(whole);
    heldBytes += whole.length;
    return heldBytes <= holdUnchecked ? [] : releaseUnchecked();
  };
  /** Milliseconds before the held text has waited maxHoldMs on the input (undefined: no limit, or nothing held). */
  const holdLeft = (): number | undefined => (maxHoldMs === undefined || held.length === 0 ? undefined : maxHoldMs - heldWaited);
  /** Text of a member: its whole lines go on, its last partial line is held (the next text may end it). */
  const lines = (text: Buffer): Buffer | undefined => {
    const joined = tail.length === 0 ? text : Buffer.concat([tail, text]);
    // A line longer than what is held goes on (held, each text would copy it again; decodeRecords bounds it).
    const lineEnd = joined.lastIndexOf(10) + 1;
    const end = joined.length - lineEnd > GZIP_HELD_TEXT_BYTES ? joined.length : lineEnd;
    tail = joined.subarray(end);
    return end > 0 ? joined.subarray(0, end) : undefined;
  };
  members: for (;;) {
    if (!(await fill(1))) break; // the end, between members
    if (members > 0 && pending[0] === 0) {
      // Zeros after a member: padding to the end (gzip: "trailing zero bytes ignored"), else junk after them.
      while (pending.length > 0 || (await fill(1))) {
        const zeros = pending.findIndex((byte) => byte !== 0);
        if (zeros >= 0) {
          pending = pending.subarray(zeros);
          at += zeros;
          break;
        }
        at += pending.length;
        pending = Buffer.alloc(0);
      }
      if (pending.length === 0) break;
    }
    const start = at;
    // The header: magic, deflate, flags, mtime, xfl, os; then the optional fields its flags name.
    const whole = await fill(10);
    // Junk (not a member) is told as such, however short.
    if ([0x1f, 0x8b, 8].some((magic, i) => i < pending.length && pending[i] !== magic)) {
      if (await damagedHeader(start, 'incorrect header check')) continue;
      return;
    }
    if (!whole) {
      if (await damagedHeader(start, 'unexpected end of file')) continue;
      return;
    }
    const flags = pending[3]!;
    let headerBytes = 10;
    if (flags & GZIP_HEADER_FLAGS.extra) {
      if (!(await fill(headerBytes + 2))) {
        if (await damagedHeader(start, 'unexpected end of file')) continue;
        return;
      }
      headerBytes += 2 + pending.readUInt16LE(headerBytes);
    }
    for (const field of [GZIP_HEADER_FLAGS.name, GZIP_HEADER_FLAGS.comment]) {
      if (!(flags & field)) continue;
      let end: number;
      while ((end = pending.indexOf(0, headerBytes)) < 0) {
        if (await fill(pending.length + 1)) continue;
        if (await damagedHeader(start, 'unexpected end of file')) continue members;
        return;
      }
      headerBytes = end + 1;
    }
    if (flags & GZIP_HEADER_FLAGS.headerCrc) headerBytes += 2;
    if (!(await fill(headerBytes))) {
      if (await damagedHeader(start, 'unexpected end of file')) continue;
      return;
    }
    // The member's compressed bytes from `keptFrom` (its start; past GZIP_RETAINED_MEMBER_BYTES, its last ones) to what was fed.
    const kept: Buffer[] = [pending.subarray(0, headerBytes)];
    let keptFrom = start;
    let keptBytes = headerBytes;
    pending = pending.subarray(headerBytes);
    at += headerBytes;
    // The deflate data: fed a chunk at a time; its end is where the inflate stops taking bytes.
    const dataStart = at;
    const inflater = new RawInflater();
    let fed = 0;
    let crc = 0;
    let size = 0;
    let inflated = 0; // the member's text so far (size is its length mod 2^32, as in the trailer)
    /** The bytes from the member's start + 1 (or the first kept) on, kept and then pending: for a search there after its damage. */
    const rewind = (): { at: number; bytes: Buffer } => {
      const from = Math.max(start + 1, keptFrom);
      return { at: from, bytes: Buffer.concat([...kept, pending.subarray(Math.min(pending.length, dataStart + fed - at))]).subarray(from - keptFrom) };
    };
    try {
      let chunk: Buffer | undefined = pending.length > 0 ? pending : undefined;
      pending = Buffer.alloc(0);
      for (;;) {
        if (chunk === undefined) {
          const next = yield* nextHolding();
          if (next.done === true) inputEnded = true;
          else chunk = next.value;
        }
        if (chunk !== undefined) {
          fed += chunk.length;
          kept.push(chunk);
          keptBytes += chunk.length;
          while (keptBytes - kept[0]!.length >= GZIP_RETAINED_MEMBER_BYTES) {
            keptBytes -= kept[0]!.length;
            keptFrom += kept.shift()!.length;
          }
        }
        for (const text of await inflater.feed(chunk)) {
          crc = crc32Of(text, crc);
          size = (size + text.length) >>> 0;
          inflated += text.length;
          const whole = lines(text);
          if (whole !== undefined) yield* handOn(hold(whole));
        }
        if (inflater.failure !== undefined) {
          const unused = chunk === undefined ? Buffer.alloc(0) : chunk.subarray(chunk.length - (fed - inflater.consumed));
          if (found) {
            // A member found after damage that fails: no member (or another damaged one), its text the range's.
            tail = Buffer.concat([...release(), tail]);
            pending = unused;
            at = dataStart + inflater.consumed;
            if (await damagedAt({ byte: dataStart + inflater.consumed, problem: inflater.failure.message, text: tail }, at, rewind())) continue members;
            return;
          }
          // Text before corrupt deflate data is held with the member's (zlib may have inflated garbage
          // first: a member cut short and followed by another, a corrupt block), and is the damage's.
          let corrupt = { byte: inflater.consumed, problem: inflater.failure.message };
          // Without `readFrom` (a FIFO), from the bytes kept while they are the member's start (its header, then its data).
          const memberData = keptFrom === start ? kept.slice(1) : undefined;
          const memberFrom = readFrom ?? (memberData === undefined ? undefined : async function* (): AsyncGenerator<Buffer> {
            yield* memberData;
          });
          if (memberFrom !== undefined) {
            // The failing call's text, dropped: the member inflated again, past the text already out.
            const again = inflateUpToCorruption(memberFrom(dataStart), inflater.consumed, inflated);
            try {
              for (let step = await again.next(); ; step = await again.next()) {
                if (step.done === true) {
                  corrupt = step.value ?? corrupt;
                  break;
                }
                const whole = lines(step.value);
                if (whole !== undefined) yield* handOn(hold(whole));
              }
            } catch {
              // Unreadable now: the text before the failing call is what there is.
            } finally {
              await again.return(undefined);
            }
          }
          tail = Buffer.concat([...release(), tail]);
          // The search goes back to the member's start + 1: zlib may have taken in the next member's header in an earlier call, which did not fail.
          pending = unused;
          at = dataStart + inflater.consumed;
          if (await damagedAt({ byte: dataStart + corrupt.byte, problem: corrupt.problem, text: tail, ...(unchecked.bytes > 0 ? { unchecked } : {}) }, at, rewind())) continue members;
          return;
        }
        const left = holdLeft();
        if (left !== undefined && left <= 0) yield* handOn(releaseUnchecked());
        const consumed = inflater.consumed;
        // Ended by the input's end: inside the deflate data, or before its trailer (the text so far goes on, as zcat gives it).
        if (chunk === undefined) {
          if (!found) yield* handOn(release());
          else tail = Buffer.concat([...release(), tail]);
          if (await damagedAt({ byte: dataStart + consumed, problem: 'unexpected end of file', text: tail }, undefined, found ? rewind() : undefined)) continue members;
          return;
        }
        if (inflater.ended || consumed < fed) {
          // What the inflate did not take (the trailer, the next member) is read on.
          pending = chunk.subarray(chunk.length - (fed - consumed));
          at = dataStart + consumed;
          break;
        }
        chunk = undefined;
      }
    } finally {
      inflater.destroy();
    }
    // The trailer: the text's CRC-32 and length (mod 2^32). A live writer may pause before it (its deflate
    // data ended): the held lines wait on it no longer than on the data.
    const trailerAt = at;
    if (!(yield* fillHolding(8))) {
      if (!found) yield* handOn(release());
      else tail = Buffer.concat([...release(), tail]);
      if (await damagedAt({ byte: trailerAt, problem: 'unexpected end of file', text: tail }, undefined, found ? rewind() : undefined)) continue;
      return;
    }
    if (pending.readUInt32LE(0) !== crc || pending.readUInt32LE(4) !== size) {
      // The text is not what was compressed: what of it was held is the damage's, not the reader's.
      const failed = release();
      if (failed.length > 0) tail = Buffer.concat([...failed, tail]);
      if (await damagedAt({ byte: trailerAt, problem: 'incorrect data check', text: tail, ...(unchecked.bytes > 0 ? { unchecked } : {}) }, trailerAt, rewind())) continue;
      return;
    }
    yield* handOn(release());
    tell(); // a member with no text
    unchecked = { bytes: 0, lineEnds: 0 };
    pending = pending.subarray(8);
    at += 8;
    members++;
    membersEnd = at;
  }
  onEnd?.(membersEnd);
  if (tail.length > 0) yield* handOn([tail]); // a last line without a line end
}

/**
 * The text of deflate data (`compressed`, from its start) past its first `skip` bytes, up to where zlib
 * fails on it: fed whole up to byte `slowFrom`, and a byte at a time from there, so that the text of
 * zlib's failing call, which Node drops, is at most that of one byte. Returns the byte it fails at and
 * why; undefined where it does not fail (the file changed since).
 */
async function* inflateUpToCorruption(compressed: AsyncIterable<Buffer>, slowFrom: number, skip: number): AsyncGenerator<Buffer, { byte: number; problem: string } | undefined> {
  const inflater = new RawInflater();
  let fed = 0;
  let toSkip = skip;
  try {
    for await (const chunk of compressed) {
      for (let offset = 0; offset < chunk.length; ) {
        const end = fed < slowFrom ? Math.min(chunk.length, offset + slowFrom - fed) : offset + 1;
        fed += end - offset;
        const texts = await inflater.feed(chunk.subarray(offset, end));
        offset = end;
        for (const text of texts) {
          const kept = text.subarray(Math.min(toSkip, text.length));
          toSkip -= text.length - kept.length;
          if (kept.length > 0) yield kept;
        }
        // Fed a byte at a time, zlib takes each whole: what it took is where it failed.
        if (inflater.failure !== undefined) return { byte: inflater.consumed, problem: inflater.failure.message };
        if (inflater.ended || inflater.consumed < fed) return undefined;
      }
    }
    return undefined;
  } finally {
    inflater.destroy();
  }
}

/**
 * Whether `next` (the input's next piece) is still unsettled after `ms`: true then (it is awaited all the
 * same after). A rejection of it is the awaiter's, not an unhandled one meanwhile.
 */
async function outwaits(next: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, true)));
  try {
    return await Promise.race([next.then(() => false, () => false), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** zlib's CRC-32, in Node from 20.15 (engines: >=20). */
const zlibCrc32 = (zlib as { crc32?: (data: Buffer, value?: number) => number }).crc32;

/** CRC-32 (gzip's), on from `crc`: zlib's where Node has it, else a table. */
const crc32Of = (bytes: Buffer, crc: number): number => (typeof zlibCrc32 === 'function' ? zlibCrc32(bytes, crc) : tableCrc32(bytes, crc));

let crcTable: Uint32Array | undefined;
function tableCrc32(bytes: Buffer, crc: number): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
