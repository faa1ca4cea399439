/**
 * `file`: writes records as JSON lines. Also the default dead-letter sink.
 *
 * Sinks of one process that write the same file share one writer (and the file is opened once), and
 * a file the pipelines run together already replaced is appended to when opened again: two pipelines run together
 * with one (lazy) dead-letter file, or two sinks given the same path, would otherwise each truncate
 * it and overwrite the other's records.
 */
import { once } from 'node:events';
import { close as closeFile, closeSync, constants as fsConstants, fstatSync, fsyncSync, ftruncateSync, open as openFile, openSync, readlinkSync, readSync, statSync, truncateSync, write as writeFile, writeSync, writev as writevFile, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { constants as zlib, createGzip, gzipSync, type Gzip, type ZlibReset } from 'node:zlib';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Socket } from 'node:net';
import { countNewlines, createFileDurably, defineSink, fileSystemErrorAt, gunzipUpToDamage, JsonLinesWriter, LockRefusedError, makeFolderDurablySync, parseDuration, PluginConfigError, releaseLock, takeLock, takeLockWaiting, timerDurationMax, TributaryError, unwritableOutput, type GzipDamage, type PluginContext, type StreamRecord } from 'tributary';

export interface FileSinkConfig {
  path: string;
  append: boolean;
  lazy: boolean;
  gzip?: boolean;
  /** The longest text waits in the gzip compressor before a sync flush (a duration; 0: until the sink's flush). */
  gzip_flush_interval?: string | number;
  lock?: boolean;
}

/** gzip_flush_interval's default: a slow stream's records are in a gzip file within about this, for a small size cost (its description). */
const GZIP_FLUSH_INTERVAL_DEFAULT = '5s';
const GZIP_FLUSH_INTERVAL_DESCRIPTION =
  'A gzip file only (a plain file gets its records within 200 ms): the longest a record waits in the compressor before a sync flush puts it in the file, readable by streaming gzip readers (`zcat`, a `file` source reading a FIFO). ' +
  'The compressor holds text until it has a deflate block to emit (about every 130 KB of prediction text) or until the sink\'s flush (each checkpoint, 30 s apart by default; without checkpoints every `settings.commit_interval`): without this, a daemon writing a few records a second has them in the file only that late. ' +
  'A sync flush keeps the member (and its dictionary) going but costs size: a stream of R records a second pays what a flush every R times this many records does, measured on the demo\'s predictions (200 bytes each) against one gzip member: every 5 records +22.8%, 15 +7.9%, 50 +2.2%, 150 +0.7%, 500 or more +0.1% (BENCHMARKS.md, gzip output of the file sink). ' +
  'So with 30 s checkpoints a stream of 1 record a second pays +3.9% without this and +22.8% with 5 s; 10 a second +0.3% and +2.2%; 100 a second +0.1% either way (a backtest: nothing measurable). ' +
  '`0`: text waits for the sink\'s flush. A file written by several sinks of the process takes the shortest of theirs (0 none).';

export default defineSink<FileSinkConfig>({
  name: 'file',
  status: 'stable',
  summary: 'Writes records as JSON lines to a file.',
  description:
    'Feature vectors are written as `{name: value}` objects. Missing folders are created. Records go to the file as they come, not at checkpoints: a plain file gets them in 256 KiB chunks, or 200 ms after the first one pending, whichever comes first (predictions are in the file that soon after the model made them, once the process has a moment: an `mlp` or `gru` model predicts in micro-batches, a sample waiting up to its `batch.max_delay` for its own, 200 ms by default; on a large input the file grows in bursts of a few chunks, a few hundred ms apart). So a crash (`kill -9`) leaves in it outputs past the last checkpoint, and the run resumed from that checkpoint writes them again (at-least-once: docs/operations.md); only right after a checkpoint (its flush, then until the next chunk or 200 ms) does the file hold no more than it covers. A flush (each checkpoint; without checkpoints every `settings.commit_interval`, and at the end) waits until every record given to the sink is handed to the OS. A gzip file\'s text is held by the compressor until a flush, until it has a deflate block to emit (about every 130 KB of prediction text), or `gzip_flush_interval` (5 s by default) after it came, when a sync flush puts it in the file: a fast stream\'s gzip file grows as it goes, a slow one\'s (a daemon at a few events a second) every `gzip_flush_interval`, not only at each flush (`checkpoint.interval`, 30 s by default). A path that a source of the pipeline reads (a `file` source\'s `path`, or any source declaring it: PluginSpec.inputFiles; by name, through links, or the same inode) is a config error, and so is `tributary backtest --input` of it: replacing it would wipe the input before it is read. Sinks of one process writing the same file (pipelines run together with one dead-letter file, say) share it: each record is written once, none overwritten; a file that another of the pipelines run together already replaced is appended to when a sink opens it again (one only this pipeline wrote is replaced again by its restart in the process from the start of its input, as a new process would). A file deleted while it is written (an `rm`, its folder removed) fails the sink at the next flush, whose checkpoint is not written: the restart from the last checkpoint writes the records since into a new file at the path. A sink resuming from a checkpoint appends, after dropping a record the last run left cut short at the end. Zero bytes the file ends with (blocks a crash left zero-filled: the file\'s size reached the disk before its data) are dropped before appending, said. Every write goes to the file\'s end (O_APPEND; a run from the start truncates the file as it opens it), and the daemon reopens the path on SIGHUP, so the file can be rotated by logrotate (`create` with `postrotate` sending SIGHUP, or `copytruncate`; docs/operations.md). A gzip file is flushed at every flush (each checkpoint; without checkpoints every `settings.commit_interval`, and at the end) with a sync flush, readable by streaming gzip readers up to there, in one member until it holds 4 MiB of text or a flush finds nothing new (idle; it is then complete gzip), so frequent flushes cost little size and a crash leaves only its last member incomplete; appending, that member is first completed with its whole records. A last member damaged by a crash (cut short and followed by zero-filled blocks or stale bytes, corrupt deflate data, a wrong CRC) is read as the `file` source reads it: cut short (zero-filled blocks after it too), its whole records are kept in a complete member and a record cut short is dropped; one whose CRC fails (a flipped bit that inflates without error too) or whose deflate data is corrupt (stale bytes after a cut: zlib can inflate them as garbage before it fails) keeps none of its records, as any of them may be wrong and kept they would get a right CRC: they are moved, as they were inflated, to a new file beside it, `<path>.damaged-<UTC time>.jsonl` (written durably before the member is replaced; resuming, those after the checkpoint are also written again from it), to check and take back. Each is said with where the damage is, why, how many bytes and records went, and where; zero bytes after a complete last member are dropped (gzip readers stop at them). The file is locked as the pipeline starts (`<path>.lock`, holding pid, host and when the process started; a `lazy` one at its first record): another process writing it (a backtest of a running daemon\'s pipeline) is refused, naming the holder; a lock of a process that died (its pid gone, or reused by a process started since; or of another host, not renewed for 10 minutes) is taken over, by one process at a time. Only a regular file is replaced: a device, a FIFO, or /dev/stdout (whatever it leads to: a shell\'s `>> out.txt` is appended to) is written without truncation, and not locked. A FIFO (named pipe) is written once a reader opens it; the pipeline waits for one (/readyz: `waiting for a reader of FIFO PATH`), and a stop while it waits ends the run before anything is read. A FIFO this process may not write stops the start for a person, as a regular file does (TRIB_ERR_OUTPUT_UNWRITABLE, exit 2). A reader that stops reading holds the pipeline back (after a minute /readyz names the sink as stalled; a stop then ends the process at `shutdown_timeout`); one that goes away fails the sink (a broken pipe, TRIB_ERR_SINK).',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: {
      path: { type: 'string', minLength: 1, description: 'File to write; relative to the pipeline file.' },
      append: { type: 'boolean', default: false, description: 'Append to the file instead of replacing it.' },
      lazy: { type: 'boolean', default: false, description: 'Create the file, its missing folders and its lock only when the first record arrives (the dead-letter default): a run with nothing to write leaves nothing behind. A lock another process holds already at the start refuses the run then (or is waited for: `--lock-wait`), as for any file; one another process takes after the start (two runs started together, neither written yet) fails this run at its first record (TRIB_ERR_OUTPUT_LOCKED, exit 2), before anything of it is written: the run cannot wait there, whatever `--lock-wait` says (a run started again finds that lock at its start, and waits for it). A FIFO is opened at the start all the same (it exists already).' },
      gzip: { type: 'boolean', description: 'Compress with gzip. Default: when the name ends in .gz (any case).' },
      gzip_flush_interval: {
        $ref: 'tributary:duration',
        default: GZIP_FLUSH_INTERVAL_DEFAULT,
        maxDuration: timerDurationMax,
        description: GZIP_FLUSH_INTERVAL_DESCRIPTION,
      },
      lock: {
        type: 'boolean',
        default: true,
        description:
          'Lock the file for this process (`<path>.lock`), so another process writing it is refused at its start.',
      },
    },
  },
  examples: [{ path: 'out/predictions.jsonl' }, { path: 'dead-letters.jsonl', append: true }],
  outputFiles: (config) => [{ path: config.path, field: 'path' }],
  create(config, context) {
    const path = resolve(context.baseDir, config.path);
    // Said at `path`, as a schema error is, before anything is opened.
    if (isFolder(path)) throw new PluginConfigError('path', `${path} is a folder; name a file in it`);
    const fileOnTheWay = fileAbove(path);
    if (fileOnTheWay !== undefined) throw new PluginConfigError('path', `${fileOnTheWay} is a file, not a folder: ${path} cannot be made in it; name a path whose folders are folders`);
    const gzip = config.gzip ?? /\.gz$/i.test(path);
    const gzipFlushMs = parseDuration(config.gzip_flush_interval ?? GZIP_FLUSH_INTERVAL_DEFAULT);
    let output: SharedOutput | undefined;
    let closed = false;
    let locked = false;
    /** Before anything of the file is replaced: another process writing it (a daemon, when this is a backtest) refuses this sink. */
    const lock = (): void => {
      if (locked || config.lock === false || isSpecialFile(path)) return;
      lockOutput(path, context);
      locked = true;
    };
    /** {@link lock}, waiting for another host's holder up to the run's lock wait; false where a stop came meanwhile. */
    const lockWaiting = async (): Promise<boolean> => {
      if (locked || config.lock === false || isSpecialFile(path)) return true;
      if (!(await lockOutputWaiting(path, context))) return false;
      locked = true;
      return true;
    };
    /** While the start waits for a FIFO's reader (openFifo): since when (UTC). */
    let waitingForReader: string | undefined;
    const open = (): SharedOutput => {
      if (closed) throw new Error(`${path}: written after the sink was closed`);
      lock();
      const resuming = context.resuming === true;
      // Its own records must follow what the file holds (resuming, append: true)...
      const keepsOld = resuming || config.append;
      // ...or the file is opened to append anyway, as another pipeline run with this one replaced it already.
      const append = keepsOld || replacedByOthers(context, path);
      // Only a regular file has a tail to mend: opening a FIFO to read it would block until a writer came.
      const mendsTail = append && !openOutputs.has(path) && !isSpecialFile(path);
      if (!gzip && mendsTail) {
        // A run that died mid-write (a full disk, kill -9) can leave a record cut short at the end.
        // Resuming, it is written again from the checkpoint: the torn bytes go. Appending to a file
        // of another origin, its last line is left as it is and ours start on a line of their own.
        // Zero bytes at the end go first, either way: a crash after the file's size reached the disk
        // but before its data did leaves its last blocks zero-filled, and no line holds them.
        const { zeros, dataEnd } = zeroTail(path);
        if (zeros > 0) {
          truncateSync(path, dataEnd);
          context.logger.warn({ file: path, bytes: zeros }, `file sink: dropped the ${zeros} zero bytes at the end of the file (blocks a crash left zero-filled: its size reached the disk before its data)`);
        }
        const { torn, lastLineEnd } = tornTail(path);
        if (torn > 0 && resuming) {
          truncateSync(path, lastLineEnd);
          context.logger.warn({ file: path, bytes: torn }, 'file sink: dropped the end of a record the last run left incomplete (it is written again from the checkpoint)');
        }
        output = openShared(path, gzip, true, keepsOld, context, gzipFlushMs);
        if (torn > 0 && !resuming) output.file.write('\n');
      } else {
        // A new member after an incomplete one would make the rest of the file unreadable: it is
        // completed as the file opens, before anything is written to it.
        const completeTail = gzip && mendsTail ? () => completeGzipTail(path).then((tail) => reportGzipTail(tail, path, resuming, context)) : undefined;
        output = openShared(path, gzip, append, keepsOld, context, gzipFlushMs, completeTail);
      }
      return output;
    };
    return {
      // A lazy file is created by its first record; the others when the pipeline starts, so a run
      // with no output leaves an empty file, and one that failed to start leaves the old file alone.
      open: async () => {
        // A FIFO exists already, so lazy creation is moot; opened at the first record instead, its open
        // would wait for a reader where no stop can release it (openFifo), and the run could never end.
        const fifo = isFifo(path);
        // A lazy file is locked at its first record (open), so that a run with nothing to write makes
        // neither the lock nor a folder; a lock already there is met now all the same, as any file's is
        // (refused at the start by a live holder, another host's waited for): nothing appears that was
        // not there. Told to stop while another host's holder was waited for: nothing is made, and the
        // run ends before reading.
        const lazy = config.lazy && !fifo;
        if (!lazy || statOf(lockPathOf(path)) !== undefined) {
          if (!(await lockWaiting())) return;
        }
        if (lazy) return;
        output ??= open();
        if (fifo) {
          // Said by /readyz while it lasts (a reader may never come: the run would look merely `starting`).
          waitingForReader = new Date().toISOString();
          try {
            await openFifo(output, context);
          } finally {
            waitingForReader = undefined;
          }
        }
        await output.opened; // a file that cannot be created fails the start, not the first flush
      },
      write(record: StreamRecord) {
        (output ?? open()).writer.write(record);
      },
      ready: () => output?.writer.ready(),
      health: () => (waitingForReader === undefined ? { ready: true } : { ready: false, detail: `waiting for a reader of FIFO ${path} (since ${waitingForReader})` }),
      flush: async () => {
        if (output === undefined) return;
        await flushOutput(output);
        failIfDeleted(output, context);
      },
      reopen: async () => {
        if (output !== undefined) await reopenOutput(output, context);
      },
      async close() {
        closed = true;
        try {
          if (output === undefined) return;
          const closing = output;
          output = undefined;
          await releaseShared(closing);
        } finally {
          if (locked) unlockOutput(path);
          locked = false;
        }
      },
    };
  },
});

/** One open output file, shared by every sink of the process writing that path. */
interface SharedOutput {
  path: string;
  gzip: boolean;
  /** Opened to append (else it replaced the file). */
  append: boolean;
  writer: JsonLinesWriter;
  file: OutputFile | FifoStream;
  compressor: GzipMembers | undefined;
  /** Resolves when the file is open; rejects if it cannot be. */
  opened: Promise<void>;
  users: number;
  /** A FIFO's read end we opened to release our pending open when told to stop; closed with the file. */
  fifoReader?: number;
}

const openOutputs = new Map<string, SharedOutput>();
/**
 * Files replaced by a sink of the pipelines run together (PluginContext.runShared): a sink opening one
 * again appends. Those pipelines do not hold a shared file open at the same times (a lazy dead-letter
 * file opens at the first reject, maybe after another pipeline closed it), and a second 'w' would
 * wipe the first one's records. A pipeline run again later (in the same process) replaces it anew. By
 * path, the pipelines that opened it since it was replaced.
 */
function replacedInRun(context: PluginContext): Map<string, Set<string>> {
  const scope = context.runShared;
  if (scope === undefined) return new Map();
  let replaced = scope.get('file-sink:replaced') as Map<string, Set<string>> | undefined;
  if (replaced === undefined) scope.set('file-sink:replaced', (replaced = new Map()));
  return replaced;
}

/**
 * Whether `path` was replaced in this run and holds another pipeline's records since (appended to, not
 * replaced again). A file only this pipeline wrote is replaced again: the daemon's restart of a failed
 * pipeline that had no checkpoint yet starts from the start of its input, as a new process would, and
 * appending (as it did) left the failed run's records (a full disk: the last one cut short) before the
 * same records written again.
 */
function replacedByOthers(context: PluginContext, path: string): boolean {
  const writers = replacedInRun(context).get(path);
  return writers !== undefined && [...writers].some((pipeline) => pipeline !== context.pipeline);
}

/**
 * `gzipFlushMs`: the sink's gzip_flush_interval (a file shared by sinks takes the shortest of theirs).
 * `beforeOpen`: run as the file opens (a new one only), before anything is written to it.
 */
function openShared(path: string, gzip: boolean, append: boolean, keepsOld: boolean, context: PluginContext, gzipFlushMs: number, beforeOpen?: () => Promise<void>): SharedOutput {
  const shared = openOutputs.get(path);
  if (shared !== undefined) {
    if (shared.gzip !== gzip) throw new Error(`${path} is already written by another sink ${shared.gzip ? 'with' : 'without'} gzip`);
    shared.compressor?.syncWithin(gzipFlushMs);
    // One sink resuming (appending) and one starting afresh (replacing): whichever opened first
    // would decide, and the resuming one's earlier output could be gone. Said instead.
    if (keepsOld && !shared.append) throw new Error(`${path} was replaced by another sink of this process as it started; this sink appends to it (it is resuming, or append: true): give them different files`);
    shared.users++;
    replacedInRun(context).get(path)?.add(context.pipeline);
    return shared;
  }
  const writers = replacedInRun(context);
  if (!append) writers.set(path, new Set([context.pipeline]));
  else writers.get(path)?.add(context.pipeline);
  try {
    makeFolderDurablySync(dirname(path));
  } catch (error) {
    throw unwritableOutput(error, path) ?? error;
  }
  // Resuming from a checkpoint keeps what was written before it (at-least-once, not truncation). Only
  // a regular file of the sink's own is replaced: not a device, nor the file a shell gave the process
  // as its stdout (`>> out.txt`, reached by /dev/stdout).
  const file = isFifo(path) ? new FifoStream(path) : new OutputFile(path, !append && !isSpecialFile(path), beforeOpen);
  let target: Writable = file;
  let compressor: GzipMembers | undefined;
  if (gzip) {
    compressor = new GzipMembers(file);
    compressor.syncWithin(gzipFlushMs);
    target = compressor;
  }
  const opened = once(file, 'open').then(() => undefined);
  opened.catch(() => undefined); // the writer reports the same error to whoever writes
  const output: SharedOutput = { path, gzip, append, writer: new JsonLinesWriter(target), file, compressor, opened, users: 1 };
  openOutputs.set(path, output);
  return output;
}

/**
 * Opens the output's path again (the daemon's SIGHUP, after a rotation renamed the file): what is
 * written from then on goes to the file at the path now. The records written before go to the old file
 * whole (a gzip file's member is ended first). A FIFO or device has nothing to reopen.
 */
async function reopenOutput(output: SharedOutput, context: PluginContext): Promise<void> {
  const file = output.file;
  if (!(file instanceof OutputFile)) return;
  await output.writer.flush(); // the records the sink was given go to the old file
  failIfDeleted(output, context); // not reopened: a new file would take over as if nothing had gone
  if (output.compressor !== undefined) await output.compressor.endMemberThenReopen(() => file.reopen());
  else await file.reopen();
  context.logger.info({ file: output.path }, 'file sink: reopened its file');
}

/**
 * Fails the run where the output's file was deleted under it (`rm`, its folder removed, a rotation that
 * compressed the renamed file before the SIGHUP): writes to a deleted file succeed, so its records since
 * the last checkpoint were going nowhere while checkpoints went on covering them, and /readyz said ready.
 * Checked at each flush (a checkpoint's: it is not written) and before a reopen; the restart from the
 * last checkpoint writes those records again into a new file at the path.
 */
function failIfDeleted(output: SharedOutput, context: PluginContext): void {
  if (!(output.file instanceof OutputFile) || !output.file.deleted()) return;
  const error = new Error(
    `${output.path}: the file was deleted while this sink wrote it (removed, its folder removed, or rotated and compressed before the SIGHUP): ` +
      'the records written since the last checkpoint went with it; the run restarts from that checkpoint and writes them again into a new file at the path',
  );
  context.fail(error);
  throw error;
}

async function flushOutput(output: SharedOutput): Promise<void> {
  await output.writer.flush();
  // gzip holds compressed output back until its block fills: a sync flush pushes it out, so what
  // a checkpoint covers is in the file (and readable) before the offsets move on.
  const { compressor, file } = output;
  if (compressor !== undefined) {
    await compressor.flushMember();
    // The pipe has handed the flushed bytes to the file stream; an empty write completes after them.
    await new Promise<void>((done, fail) => file.write(Buffer.alloc(0), (error) => (error ? fail(error) : done())));
  }
}

/** The last sink of a file closes it; the others flush what they wrote. */
async function releaseShared(output: SharedOutput): Promise<void> {
  if (--output.users > 0) return flushOutput(output);
  openOutputs.delete(output.path);
  try {
    await output.writer.close();
    // Ending gzip ends the file stream through the pipe; close is done when the file is.
    if (output.compressor !== undefined) await finished(output.file);
  } finally {
    if (output.fifoReader !== undefined) closeSync(output.fifoReader);
  }
}

/**
 * Output locks (core/lock.ts): `<file>.lock`, so a second process writing the same file (a backtest of a
 * running daemon's pipeline, a second daemon) is refused at its start, naming the file and the holder,
 * instead of replacing the first one's output under it. Sinks of one process share a file's lock as they
 * share the file.
 */
const lockPathOf = (path: string): string => `${path}.lock`;

const lockOptions = (context: PluginContext) => ({ pipeline: context.pipeline, logger: context.logger, user: 'file sink', heldAs: 'written', shared: true }) as const;

/** A lazy file's lock, taken at its first record: the pipeline runs, so another host's holder is not waited for. */
function lockOutput(path: string, context: PluginContext): void {
  try {
    takeLock(lockPathOf(path), path, lockOptions(context));
  } catch (error) {
    throw outputRefusal(error, 'first record', path);
  }
}

/**
 * {@link lockOutput}, waiting up to the run's lock wait (PluginContext.lockWaitMs, `--lock-wait`) while
 * another host's process holds the file: its lock is taken over once not renewed (its node died).
 * True once the file is this process's to write (locked, or unlocked in a read-only folder: takeLock);
 * false where the run was told to stop meanwhile: the file is still the other's.
 */
async function lockOutputWaiting(path: string, context: PluginContext): Promise<boolean> {
  try {
    await takeLockWaiting(lockPathOf(path), path, { ...lockOptions(context), waitMs: context.lockWaitMs ?? 0, ...(context.signal ? { signal: context.signal } : {}) });
    return true;
  } catch (error) {
    if (error instanceof LockRefusedError && error.takeoverAt !== undefined && context.signal?.aborted) return false;
    throw outputRefusal(error, 'start', path);
  }
}

/**
 * A refusal of the file's lock as the run's failure. A live holder of this host keeps it as long as it
 * runs, and another host's that renews it keeps it until it stops (the lock waited for, `--lock-wait`):
 * restarting would only be refused again, so both stop the run for a person (TRIB_ERR_OUTPUT_LOCKED, exit 2
 * at once). A lock changing hands (being written, being taken over) is gone in a moment: a restart mends it.
 */
function outputRefusal(error: unknown, at: 'start' | 'first record', path: string): unknown {
  // The folders on the way to it, made for its lock, that this process may not make: as the file's own open would be.
  if (!(error instanceof LockRefusedError)) return unwritableOutput(error, path) ?? error;
  // At a lazy file's first record this run's --lock-wait cannot help (nothing waits there: the
  // pipeline runs); a run started again meets the lock at its start, and waits under it.
  const orWait =
    error.takeoverAt === undefined
      ? ''
      : at === 'start'
        ? ', or let the run wait for its takeover (--lock-wait of tributary run or backtest, e.g. 15m)'
        : ', or start the run again with --lock-wait (e.g. 15m): this lazy file was taken after the run started, and its first record cannot wait for the takeover; a run that finds the lock as it starts waits for it';
  const message =
    `${error.message}. Stop that process or give this sink another path ` +
    `(a backtest: --set sinks[N].path=... and dead_letter.path=...); if no such process runs, remove the lock file${orWait}`;
  return error.holderLives || error.takeoverAt !== undefined ? new TributaryError('TRIB_ERR_OUTPUT_LOCKED', message, { cause: error }) : new Error(message, { cause: error });
}

const unlockOutput = (path: string): void => releaseLock(lockPathOf(path));

/**
 * A regular output file, opened to append (O_APPEND: every write goes to the file's end) and reopened
 * at its path on request ({@link reopen}: the daemon's SIGHUP), as long-running daemons let logrotate
 * rotate their logs. O_APPEND makes a `copytruncate` rotation clean: after the truncation the next
 * write lands at offset 0, where a write at the stream's own offset (a plain 'w') left the file a hole
 * of NULs as long as what was cut. A `create` rotation (rename, then SIGHUP) needs the reopen: the
 * descriptor still names the renamed file. Replacing the file (a run from the start) truncates it as it
 * opens; it is still appended to from then on.
 */
class OutputFile extends Writable {
  private fd: number | undefined;
  /** Bytes of the chunks written whole (to the file open now or to the ones before it). */
  private written = 0;
  /** Where in the byte stream the path is to be opened again (a chunk boundary: chunks are whole lines); undefined: not asked. */
  private reopenAt: number | undefined;

  constructor(
    private readonly path: string,
    private readonly replace: boolean,
    /** Run before the file is opened (completing a gzip file's tail); a failure fails the open. */
    private readonly beforeOpen?: () => Promise<void>,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  /**
   * Opens the path again, after everything handed to the stream so far went to the file open now:
   * records written from then on go to the file at the path now (created if the old one was renamed
   * away). Resolves once it is open.
   */
  reopen(): Promise<void> {
    this.reopenAt = this.written + this.writableLength;
    // An empty write reaches _write in its turn, even when the stream is idle.
    return new Promise((resolve, reject) => this.write(Buffer.alloc(0), (error) => (error ? reject(error) : resolve())));
  }

  /** Whether the file open now has no name left (deleted; a rename keeps one). */
  deleted(): boolean {
    return this.fd !== undefined && fstatSync(this.fd).nlink === 0;
  }

  override _construct(done: (error?: Error | null) => void): void {
    const open = (): void =>
      this.openPath(this.replace ? fsConstants.O_TRUNC : 0, (error) => {
        if (!error) this.emit('open', this.fd);
        done(error);
      });
    if (this.beforeOpen === undefined) return open();
    this.beforeOpen().then(open, (error: unknown) => done(error instanceof Error ? error : new Error(String(error))));
  }

  private openPath(extra: number, done: (error: Error | null) => void): void {
    openFile(this.path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND | extra, 0o666, (error, fd) => {
      // Opening or reopening (SIGHUP after a rotation): no permission, a read-only mount are a person's to mend.
      if (error) return done(unwritableOutput(error, this.path) ?? error);
      this.fd = fd;
      done(null);
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.reopenAt !== undefined && this.written >= this.reopenAt) {
      this.reopenAt = undefined;
      const old = this.fd!;
      this.fd = undefined;
      closeFile(old, (closing) => {
        if (closing) return done(closing);
        this.openPath(0, (error) => (error ? done(error) : this.writeAll(chunk, done)));
      });
      return;
    }
    this.writeAll(chunk, done);
  }

  /** Chunks queued while a write was under way, in one system call (as node's file streams do); one at a time around a reopen. */
  override _writev(chunks: { chunk: Buffer }[], done: (error?: Error | null) => void): void {
    if (this.reopenAt !== undefined) {
      const next = (index: number): void => (index === chunks.length ? done() : this._write(chunks[index]!.chunk, 'utf8', (error) => (error ? done(error) : next(index + 1))));
      return next(0);
    }
    const buffers = chunks.map(({ chunk }) => chunk);
    writevFile(this.fd!, buffers, null, (error, bytes) => {
      if (error) return done(this.named(error));
      let total = 0;
      for (const buffer of buffers) total += buffer.length;
      if (bytes === total) {
        this.written += total;
        return done();
      }
      // A short write: the rest, from where it stopped.
      // Counted when all is written (writeAll counts the rest), so `written` never counts a chunk in part: see reopen.
      this.writeAll(Buffer.concat(buffers).subarray(bytes), (failed) => {
        if (!failed) this.written += bytes;
        done(failed);
      });
    });
  }

  /** Writes the chunk whole, then counts it written (with writableLength, which counts it until then, the bytes handed over: reopen). */
  private writeAll(chunk: Buffer, done: (error?: Error | null) => void, from = 0): void {
    if (from >= chunk.length) {
      this.written += chunk.length;
      return done();
    }
    writeFile(this.fd!, chunk, from, chunk.length - from, null, (error, bytes) => (error ? done(this.named(error)) : this.writeAll(chunk, done, from + bytes)));
  }

  /**
   * A write's error with the file's path (node's says only `ENOSPC: no space left on device, write`: which
   * output, on which disk, the sink's failure did not tell), its code and cause kept.
   */
  private named(error: NodeJS.ErrnoException): Error {
    return fileSystemErrorAt(error, this.path, { full: ': the file system holding it is full; free room there' });
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (this.fd === undefined) return done(error);
    const fd = this.fd;
    this.fd = undefined;
    closeFile(fd, (closing) => done(error ?? closing));
  }
}

/**
 * Opening a FIFO to write blocks (in libuv's thread pool) until a reader opens it, and a process with
 * a blocked pool thread cannot even exit. So the start waits for a reader only until the pipeline is
 * told to stop; then our own read end releases the open, and the run ends before writing anything.
 */
async function openFifo(output: SharedOutput, context: PluginContext): Promise<void> {
  const signal = context.signal;
  let stop = (): void => undefined;
  const stopped = new Promise<boolean>((resolve) => (stop = () => resolve(false)));
  const waiting = setTimeout(() => context.logger.info({ file: output.path }, `file sink: waiting for a reader of FIFO ${output.path} (/readyz says not ready meanwhile)`), 1_000);
  signal?.addEventListener('abort', stop);
  if (signal?.aborted) stop();
  // Said at once, at debug level (the info line waits a second, not to speak of a reader that comes):
  // also the point where file.test.ts stops a run, once it reads this, to check a stop ends the wait.
  context.logger.debug({ file: output.path }, 'file sink: opening the FIFO, which waits for a reader');
  try {
    const opened = await Promise.race([output.opened.then(() => true, () => true), stopped]);
    if (opened) return;
  } finally {
    clearTimeout(waiting);
    signal?.removeEventListener('abort', stop);
  }
  output.fifoReader ??= openSync(output.path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
}

/**
 * A FIFO (or a pipe, such as /dev/stdout piped) written through the event loop, as node writes its
 * own stdout to a pipe. A file stream's writes run in libuv's thread pool and block there while the
 * pipe is full: with a reader that stopped reading, the write never returned, so neither did the
 * shutdown, nor even shutdown_timeout's process.exit, which joins the pool's threads. Only the open
 * waits in the pool (until a reader comes, or the stop opens one: openFifo). A reader that goes away
 * fails the writes with EPIPE, said as such.
 */
class FifoStream extends Writable {
  private socket: Socket | undefined;

  constructor(private readonly path: string) {
    super({ highWaterMark: 1 << 20 });
  }

  override _construct(done: (error?: Error | null) => void): void {
    // A plain descriptor, not a FileHandle: the socket owns it from here on, and a FileHandle would close it when collected.
    openFile(this.path, fsConstants.O_WRONLY, (error, fd) => {
      // A FIFO this process may not write: a person's to mend, as a regular file's (TRIB_ERR_OUTPUT_UNWRITABLE, exit 2; was: restarts, then exit 1).
      if (error) return done(unwritableOutput(error, this.path) ?? error);
      const socket = new Socket({ fd, readable: false, writable: true });
      socket.on('error', (cause) => this.destroy(this.named(cause)));
      this.socket = socket;
      this.emit('open', fd);
      done();
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.socket!.write(chunk, (error) => done(error ? this.named(error) : null));
  }

  override _final(done: (error?: Error | null) => void): void {
    this.socket!.end(() => done());
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.socket?.destroy();
    done(error);
  }

  private named(error: Error): Error {
    if ((error as NodeJS.ErrnoException).code !== 'EPIPE') return error;
    return Object.assign(new Error(`${this.path}: the pipe's reader went away (EPIPE, broken pipe)`, { cause: error }), { code: 'EPIPE' });
  }
}

/** What `path` is, or undefined where nothing can be read (left for opening the file to report). */
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Whether `path` is not a file of the sink's own: it exists and is not a regular file (a FIFO, a device),
 * or it names a descriptor of the process (/dev/stdout, which leads to whatever the shell opened: with
 * `>> out.txt` a regular file, to be appended to, not replaced nor locked).
 */
const isSpecialFile = (path: string): boolean => namesDescriptor(path) || statOf(path)?.isFile() === false;
const isFifo = (path: string): boolean => statOf(path)?.isFIFO() === true;
const isFolder = (path: string): boolean => statOf(path)?.isDirectory() === true;

/** The nearest of `path`'s folders that is there, where it is not a folder (a file: mkdir said only EEXIST or ENOTDIR). */
function fileAbove(path: string): string | undefined {
  for (let folder = dirname(path); ; folder = dirname(folder)) {
    const stat = statOf(folder);
    if (stat !== undefined) return stat.isDirectory() ? undefined : folder;
    if (dirname(folder) === folder) return undefined;
  }
}

/** /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N, or a link to one of them. */
function namesDescriptor(path: string): boolean {
  let at = path;
  for (let links = 0; links <= 8; links++) {
    if (/^\/(dev\/(stdout|stderr|stdin|fd\/\d+)|proc\/(self|thread-self|\d+)\/fd\/\d+)$/.test(at)) return true;
    try {
      at = resolve(dirname(at), readlinkSync(at));
    } catch {
      return false; // not a link (or not there)
    }
  }
  return false;
}
/**
 * The bytes after the file's last newline (`torn`: 0 for a missing or empty file, or one that ends in a
 * newline) and where they start (`lastLineEnd`, the length to truncate it to).
 */
function tornTail(path: string): { torn: number; lastLineEnd: number } {
  const { at, size } = findLast(path, NEWLINE);
  const lastLineEnd = at < 0 ? 0 : at + 1;
  return { torn: size - lastLineEnd, lastLineEnd };
}

/** The zero bytes the file ends with (0 for a missing or empty file) and where they start (`dataEnd`, the length to truncate it to). */
function zeroTail(path: string): { zeros: number; dataEnd: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { zeros: 0, dataEnd: 0 };
  }
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.alloc(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - buffer.length);
      const read = readSync(fd, buffer, 0, end - start, start);
      let at = read;
      while (at > 0 && buffer[at - 1] === 0) at--;
      if (at > 0 || read < end - start) return { zeros: size - (start + at), dataEnd: start + at };
      end = start;
    }
    return { zeros: size, dataEnd: 0 };
  } finally {
    closeSync(fd);
  }
}

const NEWLINE = Buffer.from('\n');
/** The header node's zlib writes at the start of every gzip member (no name, no time, OS unix). */
const GZIP_MEMBER_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03]);

/** Where `needle` last occurs in the file's last `within` bytes (-1: nowhere, or no such file), read backwards in blocks, and the file's size. */
function findLast(path: string, needle: Buffer, within = Infinity): { at: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { at: -1, size: 0 };
  }
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.alloc(64 * 1024);
    // Blocks overlap by the needle's length less one, so a needle across two blocks is found.
    for (let end = size; end >= needle.length; end = Math.min(end - 1, Math.max(0, end - buffer.length) + needle.length - 1)) {
      const start = Math.max(0, end - buffer.length);
      const read = readSync(fd, buffer, 0, end - start, start);
      const found = buffer.subarray(0, read).lastIndexOf(needle);
      if (found >= 0) return { at: start + found, size };
      if (start === 0 || size - start >= within) break;
    }
    return { at: -1, size };
  } finally {
    closeSync(fd);
  }
}

const FLUSH: unique symbol = Symbol('flush of the gzip output');
/** In the gzip output's queue: a sync flush of text that waited syncAfterMs (GzipMembers.syncWithin). */
const SYNC: unique symbol = Symbol('timed sync flush of the gzip output');
/** In the gzip output's queue: end the member, then reopen the file (GzipMembers.endMemberThenReopen). */
interface ReopenStep {
  reopenFile(): void;
}

/**
 * A member ends at a flush once it holds this much text. A member per flush cost (against one member
 * for the file) 54% more bytes flushed every 10 predictions (2 KB), 6.4% every 100, 0.9% every 1,000,
 * 0.1% every 10,000 (2 MB): each new member starts without the last one's dictionary. Sync flushes in
 * one member cost 11.7%, 1.0%, 0.1%, 0.0% (BENCHMARKS.md, gzip output of the file sink).
 */
const MEMBER_TEXT_BYTES = 4 << 20;

/**
 * gzip output flushed at every flush (checkpoint, commit): a sync flush, which keeps the member (and
 * its dictionary) going, so what a checkpoint covers is in the file, readable by any streaming gzip
 * reader (zcat prints it all, then reports the unexpected end). The member ends (a complete gzip file,
 * readable by whole-file readers too) at a flush that finds nothing written since the last one (the
 * output is idle), once it holds MEMBER_TEXT_BYTES, and at close. A crash leaves at most the last
 * member incomplete, everything before it complete; a resumed run completes it (completeGzipTail), and
 * its tail search and decompression stay bounded by the member's size.
 * Writes and flushes go through one queue, so no chunk can slip in between a member's end and the next
 * one's start.
 */
class GzipMembers extends Writable {
  // Node's gzip has reset() (all zlib streams do); @types/node leaves it off Gzip.
  private readonly gzip: Gzip & ZlibReset = createGzip() as Gzip & ZlibReset;
  private bytesInMember = 0;
  /** Text since the last flushMember: none at one is an idle output, whose member ends. */
  private bytesSinceFlush = 0;
  /** Text since the last sync flush (flushMember's, or one of syncWithin's): what the compressor may hold. */
  private bytesSinceSync = 0;
  /** The longest text waits in the compressor before a sync flush (0: none, until flushMember). */
  private syncAfterMs = 0;
  /** Set as text comes after a sync flush: the sync flush due syncAfterMs after it. */
  private syncTimer: NodeJS.Timeout | undefined;

  constructor(file: Writable) {
    super({ objectMode: true, highWaterMark: 4 });
    this.gzip.pipe(file);
    this.gzip.on('error', (error) => this.destroy(error));
    file.on('error', (error) => this.destroy(error));
  }

  /**
   * Text waits in the compressor at most `ms` (0: until flushMember) before a sync flush hands it to the
   * file: a slow stream's records would wait for the next flush (a checkpoint, 30 s). The shortest asked for is kept.
   */
  syncWithin(ms: number): void {
    if (ms > 0 && (this.syncAfterMs === 0 || ms < this.syncAfterMs)) this.syncAfterMs = ms;
  }

  /** Flushes (or ends) the member under way and resolves once its bytes are handed to the file. */
  async flushMember(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.write(FLUSH, (error) => (error ? reject(error) : resolve())));
    await this.handedToFile();
  }

  /**
   * Ends the member under way and, once its bytes are handed to the file, has the file reopened
   * (`reopenFile`, called before anything more is compressed): the old file ends with a complete
   * member, the new one starts with a new member.
   */
  async endMemberThenReopen(reopenFile: () => Promise<void>): Promise<void> {
    let reopened: Promise<void> = Promise.resolve();
    const step: ReopenStep = { reopenFile: () => void (reopened = reopenFile()) };
    await new Promise<void>((resolve, reject) => this.write(step, (error) => (error ? reject(error) : resolve())));
    await reopened;
  }

  /** Resolves once zlib's output so far reached the file: it goes through the pipe, which holds it back while the file is busy. */
  private async handedToFile(): Promise<void> {
    const gzip = this.gzip;
    if (gzip.readableLength === 0) return;
    await new Promise<void>((resolve) => {
      const drained = (): void => {
        if (gzip.readableLength > 0) return;
        gzip.off('data', drained);
        resolve();
      };
      gzip.on('data', drained);
    });
  }

  override _write(chunk: Buffer | typeof FLUSH | typeof SYNC | ReopenStep, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (Buffer.isBuffer(chunk)) {
      this.bytesInMember += chunk.length;
      this.bytesSinceFlush += chunk.length;
      this.bytesSinceSync += chunk.length;
      if (this.syncAfterMs > 0 && this.syncTimer === undefined && chunk.length > 0) {
        // In the queue behind what is written meanwhile; unref: a quiet file holds no process open.
        this.syncTimer = setTimeout(() => {
          this.syncTimer = undefined;
          if (!this.writableEnded && !this.destroyed) this.write(SYNC);
        }, this.syncAfterMs).unref();
      }
      this.gzip.write(chunk, done);
    } else if (chunk === SYNC) {
      // Flushed since the timer was set (a checkpoint), or the member ended: nothing waits.
      if (this.bytesSinceSync === 0) return done();
      this.synced();
      this.gzip.flush(zlib.Z_SYNC_FLUSH, () => done());
    } else if (chunk !== FLUSH) {
      const reopen = (): void =>
        void this.handedToFile().then(() => {
          chunk.reopenFile();
          done();
        });
      if (this.bytesInMember === 0) return reopen();
      this.bytesInMember = 0;
      this.bytesSinceFlush = 0;
      this.synced();
      this.gzip.flush(zlib.Z_FINISH, () => {
        this.gzip.reset();
        reopen();
      });
    } else if (this.bytesInMember === 0) done();
    else if (this.bytesSinceFlush > 0 && this.bytesInMember < MEMBER_TEXT_BYTES) {
      this.bytesSinceFlush = 0;
      // Sync-flushed since the text came (syncWithin): the compressor holds nothing of it.
      if (this.bytesSinceSync === 0) return done();
      this.synced();
      this.gzip.flush(zlib.Z_SYNC_FLUSH, () => done());
    } else {
      this.bytesInMember = 0;
      this.bytesSinceFlush = 0;
      this.synced();
      this.gzip.flush(zlib.Z_FINISH, () => {
        this.gzip.reset(); // the next bytes start a new member, header first
        done();
      });
    }
  }

  /** The compressor is flushed (or its member ended) up to here: no sync flush is due. */
  private synced(): void {
    this.bytesSinceSync = 0;
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
  }

  override _final(done: (error?: Error | null) => void): void {
    this.synced();
    this.gzip.end(); // ends the file through the pipe
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.synced();
    done(error);
  }
}

/**
 * Before appending to a gzip file: a last member the previous run left incomplete (it died before the
 * member's flush ended it) or damaged (a crash after the file's size reached the disk but not all of its
 * data: its last blocks zero-filled or stale bytes; a flipped bit; a wrong CRC) is replaced by a complete
 * one holding its whole records before the damage, as a plain file keeps the whole records after its
 * checkpoint; zero bytes after a complete last member go. Read as the file source reads it
 * (gunzipUpToDamage): what the sink keeps is what the source reads. The records of it that are not kept
 * as they may be wrong (its CRC failed, or its deflate data is corrupt: zlib can inflate garbage before it
 * fails) are moved to a file beside it (setAside), not lost. Only the last member is read (bounded
 * by a checkpoint interval's output), found by the header node's zlib writes. A file of another writer
 * (or one written as a single member, before members per flush) is read whole only within bounds: past
 * them its end is left unchecked (said) rather than decompressed into memory.
 */
type GzipTail =
  | { kind: 'complete' }
  | { kind: 'padded'; zeroBytes: number }
  | { kind: 'completed'; records: number; dropped: number; damage: GzipTailDamage; failedRecords: number; movedTo?: string }
  | { kind: 'unchecked'; reason: string };

/** Where a gzip file's last member is damaged (a byte of the file), why, and how many bytes of the file from there were not read. */
interface GzipTailDamage {
  byte: number;
  problem: string;
  unreadBytes: number;
  /** Zero bytes the file ended with, left out of the reading (blocks a crash left zero-filled). */
  zeroBytes: number;
}

/** How far back from a gzip file's end its last member is looked for, and how much of it is decompressed. */
const GZIP_TAIL_BYTES = 64 << 20;
const GZIP_TAIL_TEXT_BYTES = 64 << 20;
/** The pieces a gzip file's tail is inflated in (as zlib's streams do); corrupt data costs a piece inflated a byte at a time. */
const GZIP_TAIL_PIECE_BYTES = 16 << 10;

async function completeGzipTail(path: string): Promise<GzipTail> {
  const { at, size } = findLast(path, GZIP_MEMBER_HEADER, GZIP_TAIL_BYTES);
  if (size === 0) return { kind: 'complete' };
  if (at < 0 && size > GZIP_TAIL_BYTES) return { kind: 'unchecked', reason: `no member of this sink in its last ${GZIP_TAIL_BYTES >> 20} MiB` };
  const start = Math.max(at, 0);
  const fd = openSync(path, 'r+');
  try {
    const tail = Buffer.alloc(size - start);
    readSync(fd, tail, 0, tail.length, start);
    let read = await readGzipTail(tail);
    // Zeros after a cut are no deflate data (inflated, they may even pass for text): where the damage
    // lies in them, the tail is read without them. (A trailer's length often ends in zero bytes.)
    let dataEnd = tail.length;
    while (dataEnd > 0 && tail[dataEnd - 1] === 0) dataEnd--;
    const zeroBytes = read?.damage !== undefined && read.damage.byte >= dataEnd ? tail.length - dataEnd : 0;
    if (zeroBytes > 0) read = await readGzipTail(tail.subarray(0, dataEnd));
    if (read === undefined) return { kind: 'unchecked', reason: `its last member holds more than ${GZIP_TAIL_TEXT_BYTES >> 20} MiB` };
    const { damage, membersEnd } = read;
    if (damage === undefined) {
      if (membersEnd === tail.length) return { kind: 'complete' };
      // Zeros after the last member: gzip -d stops at them, so a member of ours after them would go unread.
      ftruncateSync(fd, start + membersEnd);
      fsyncSync(fd);
      return { kind: 'padded', zeroBytes: tail.length - membersEnd };
    }
    if (start === 0 && damage.byte === 0) throw new Error(`${path} is not a gzip file it can append to (${damage.problem})`);
    const whole = read.text.subarray(0, read.text.lastIndexOf(10) + 1);
    // The text not kept: a record cut short (written again from the checkpoint), or, held back with its
    // member (damage.text), records that may be wrong: those are set aside before the member is replaced.
    const dropped = Buffer.concat([read.text.subarray(whole.length), damage.text]);
    const failedRecords = countNewlines(damage.text);
    const movedTo = dropped.includes(10) ? await setAside(path, dropped) : undefined;
    const member = whole.length > 0 ? gzipSync(whole) : Buffer.alloc(0);
    writeSync(fd, member, 0, member.length, start);
    ftruncateSync(fd, start + member.length);
    fsyncSync(fd);
    return {
      kind: 'completed',
      records: countNewlines(whole),
      // A wrong CRC, corrupt data: the member's text, held back (damage.text), may be wrong; kept, it would get a right CRC.
      failedRecords,
      dropped: dropped.length,
      damage: { byte: start + damage.byte, problem: damage.problem, unreadBytes: tail.length - zeroBytes - damage.byte, zeroBytes },
      ...(movedTo === undefined ? {} : { movedTo }),
    };
  } finally {
    closeSync(fd);
  }
}

/**
 * Records of a gzip file's damaged last member that are not kept (completeGzipTail) written, as they
 * were inflated, to a new file beside it, `<path>.damaged-<UTC time>.jsonl` (never over another; durably,
 * before the member is replaced): the user can check them and take back those that are right. Returns its path.
 */
async function setAside(path: string, text: Buffer): Promise<string> {
  const time = new Date().toISOString().replace(/[-:]|\.\d+/g, ''); // 20261207T054000Z
  for (let n = 1; ; n++) {
    const aside = `${path}.damaged-${time}${n === 1 ? '' : `-${n}`}.jsonl`;
    if (await createFileDurably(aside, text)) return aside;
  }
}

/**
 * A gzip file's tail read up to its damage (in memory: it is bounded), its text (undefined: more than
 * GZIP_TAIL_TEXT_BYTES), and where its members end when it has none.
 */
async function readGzipTail(tail: Buffer): Promise<{ text: Buffer; damage?: GzipDamage; membersEnd: number } | undefined> {
  let damage: GzipDamage | undefined;
  let membersEnd = tail.length;
  // In pieces: corrupt data is inflated again a byte at a time from its failing piece's start.
  const from = async function* (byte: number): AsyncGenerator<Buffer> {
    for (let at = byte; at < tail.length; at += GZIP_TAIL_PIECE_BYTES) yield tail.subarray(at, at + GZIP_TAIL_PIECE_BYTES);
  };
  const texts: Buffer[] = [];
  let length = 0;
  // The member held whole until its CRC checks (it is bounded here anyway): text that fails it is not kept.
  const reading = gunzipUpToDamage(from(0), { onDamage: (found) => void (damage = found), readFrom: from, onEnd: (end) => void (membersEnd = end), holdUnchecked: GZIP_TAIL_TEXT_BYTES });
  for await (const text of reading) {
    length += text.length;
    if (length > GZIP_TAIL_TEXT_BYTES) {
      await reading.return(undefined);
      return undefined;
    }
    texts.push(text);
  }
  return { text: Buffer.concat(texts), membersEnd, ...(damage === undefined ? {} : { damage }) };
}

/** Said once the end of a gzip file appended to is checked (completeGzipTail): what was dropped, and why. */
function reportGzipTail(tail: GzipTail, path: string, resuming: boolean, context: PluginContext): void {
  const logger = context.logger;
  if (tail.kind === 'unchecked') {
    logger.warn({ file: path, reason: tail.reason }, 'file sink: appending to a gzip file whose end could not be checked; if its last member is incomplete, gzip readers stop there');
  } else if (tail.kind === 'padded') {
    logger.warn({ file: path, droppedBytes: tail.zeroBytes }, `file sink: dropped the ${tail.zeroBytes} zero bytes after the last gzip member (blocks a crash left zero-filled, or padding): gzip readers stop at them, and would not read the records appended after`);
  } else if (tail.kind === 'completed') {
    const { damage } = tail;
    const cut = resuming ? 'a record cut short is dropped; it is written again from the checkpoint' : 'a record cut short is dropped';
    const fields = { file: path, records: tail.records, droppedBytes: tail.dropped, damagedAt: damage.byte, problem: damage.problem, unreadBytes: damage.unreadBytes, zeroBytes: damage.zeroBytes };
    // Resuming, the records after the checkpoint are written again: the file set aside may hold some of them too.
    const again = resuming ? '; those after the checkpoint are written again from it' : '';
    const moved = tail.movedTo === undefined ? 'dropped' : `moved to ${tail.movedTo}`;
    const movedFields = { failedRecords: tail.failedRecords, ...(tail.movedTo === undefined ? {} : { movedTo: tail.movedTo }) };
    if (damage.problem === 'incorrect data check') {
      logger.warn(
        { ...fields, ...movedFields },
        `file sink: the gzip member at the end of the file fails its CRC check (its text is not what was compressed; trailer at byte ${damage.byte}): its ${tail.failedRecords} records are ${moved}, as any of them may be wrong (kept, they would get a right CRC), and the member replaced by a complete one of the ${tail.records} whole records before it${again}`,
      );
    } else if (tail.failedRecords > 0) {
      const unread = damage.unreadBytes > 0 ? [`the ${damage.unreadBytes} bytes from there to the end`] : [];
      const zeros = damage.zeroBytes > 0 ? [`the ${damage.zeroBytes} zero bytes the file ended with (blocks a crash left zero-filled)`] : [];
      const dropping = unread.length + zeros.length > 0 ? `, dropping ${[...unread, ...zeros].join(' and ')}` : '';
      logger.warn(
        { ...fields, ...movedFields },
        `file sink: the gzip member at the end of the file is damaged at byte ${damage.byte} (${damage.problem}): its ${tail.failedRecords} records inflated before the damage are ${moved}, as any of them may be wrong (zlib can inflate corrupt data as garbage before it fails; kept, they would get a right CRC), and the member replaced by a complete one of the ${tail.records} whole records before it${dropping}${again}`,
      );
    } else if (damage.problem === 'unexpected end of file' && damage.zeroBytes === 0) {
      logger.warn(fields, `file sink: completed the gzip member left incomplete at the end of the file (${cut})`);
    } else {
      const unread = damage.unreadBytes > 0 ? [`the ${damage.unreadBytes} bytes from there to the end`] : [];
      const zeros = damage.zeroBytes > 0 ? [`the ${damage.zeroBytes} zero bytes the file ended with (blocks a crash left zero-filled)`] : [];
      const record = tail.dropped > 0 ? `; ${cut}` : '';
      logger.warn(
        fields,
        `file sink: the gzip member at the end of the file is damaged at byte ${damage.byte} (${damage.problem}): replaced by a complete member of its ${tail.records} whole records before the damage, dropping ${[...unread, ...zeros].join(' and ')}${record}`,
      );
    }
  }
}
