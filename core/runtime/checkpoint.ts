/**
 * Checkpoint files: one consistent snapshot of a pipeline's operator state and the source positions
 * it covers.
 *
 * Layout: a one-line JSON header (format, version, sequence, body length, SHA-256 of the body), a
 * newline, then the body (JSON). The body is hashed as written, so a torn or corrupted file is
 * detected before anything is restored from it. Files are written durably (createFileDurably: a temp
 * name, fsynced, linked to its new name, the folder fsynced): a crash at any moment leaves either the
 * old set or the new one. A write never replaces a file: where another writer of a shared folder
 * (scale_out's) took the sequence first, it takes the next. With `compression: gzip` the body is gzip
 * (version 2, `encoding` in the header), and the length and hash are of the bytes as written, so a
 * torn file is still found before inflating.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createGzip, gunzip } from 'node:zlib';
import type { Logger } from 'pino';
import { fileSystemErrorAt, TributaryError, writeAccessFix } from '../errors.js';
import { isRunning, keepLock, LOCK_STALE_MS, LockRefusedError, readOnlyCause, releaseLock, takeLock, takeLockWaiting, type LockOptions } from '../lock.js';
import type { SourcePosition, StageRecord } from '../plugin.js';
import type { LoadedPipeline } from '../config/load.js';
import { parseDuration } from '../duration.js';
import { createFileDurably, isOwnTempName, makeFolderDurably } from '../durable.js';
import { piecesOf, reusePieces, sha256InParts } from './parts.js';
import { tributaryVersion } from '../cli/build.js';

export const checkpointFormat = 'tributary-checkpoint';
/** Version 1: the body as JSON; 2: gzip of it (a release reading only 1 refuses it by this number). */
export const checkpointVersion = 1;
const compressedVersion = 2;

/** How checkpoint bodies are written (the `checkpoint.compression` setting). */
export type CheckpointCompression = 'none' | 'gzip';

const inflate = promisify(gunzip);

export interface CheckpointBody {
  pipeline: string;
  createdAt: string;
  /** Position of each source (by label) that the state covers. */
  sources: Record<string, SourcePosition>;
  /** State of each stateful operator, by label. */
  operators: Record<string, unknown>;
  /** Run counters, so totals survive restarts. */
  counters: Record<string, unknown>;
  /**
   * The pipeline's stages as configured when it was taken, in order (absent in checkpoints before
   * 2026-12-07, partitions' files included): a restore compares them with the stages now, to say which
   * resumed state was built on features that are made otherwise since. Older releases ignore it.
   */
  stages?: CheckpointStage[];
  /**
   * The pipeline file it was written by, its absolute path (absent before 2026-12-07): beside `pipeline` (the
   * `name`), what tells two pipeline files of one name apart (one copied from the other), whose runs would
   * resume each other's checkpoints (PluginContext.pipelineFile; see otherPipelineText).
   */
  pipelineFile?: string;
}

/**
 * Where a checkpoint or a model file (`saved`: the pipeline and its file that wrote it) is another pipeline's than
 * `now`'s, the words naming both (`pipeline shop (/a/shop.yaml), not this run's pipeline shop (/b/shop.yaml)`);
 * undefined where it is this pipeline's, or nothing tells (written before the file was recorded, a pipeline not
 * loaded from a file). The name alone does not tell apart two files of one name (one copied from the other).
 */
export function otherPipelineText(
  saved: { readonly pipeline?: string | undefined; readonly pipelineFile?: string | undefined },
  now: { readonly pipeline: string; readonly pipelineFile?: string | undefined },
): string | undefined {
  if (saved.pipeline === undefined) return undefined;
  const named = (pipeline: string, file: string | undefined): string => `pipeline ${pipeline}${file === undefined ? '' : ` (${file})`}`;
  const otherFile = saved.pipelineFile !== undefined && now.pipelineFile !== undefined && saved.pipelineFile !== now.pipelineFile;
  if (saved.pipeline === now.pipeline && !otherFile) return undefined;
  return `${named(saved.pipeline, saved.pipelineFile)}, not this run's ${named(now.pipeline, now.pipelineFile)}`;
}

/** A stage as a checkpoint records it (CheckpointBody.stages). */
export type CheckpointStage = StageRecord;

export interface Checkpoint extends CheckpointBody {
  sequence: number;
  file: string;
  /** SHA-256 of the body as written (its header's): with the sequence, what {@link checkpointMark} names. */
  sha256: string;
}

/**
 * A token naming one checkpoint file, for a source to store with its acknowledgement of the input the
 * file covers (Kafka: the offset commit's metadata), so a restore can tell which file the last
 * acknowledgement goes with (Source.commit, Source.committedMarks). Its sequence and the start of its
 * body's SHA-256: a file of that sequence in another folder (another member's, or this one emptied and
 * begun again) is not taken for it.
 */
export function checkpointMark(checkpoint: { sequence: number; sha256: string }): string {
  return `tributary-checkpoint:${checkpoint.sequence}:${checkpoint.sha256.slice(0, 16)}`;
}

const markPattern = /^tributary-checkpoint:(\d+):([0-9a-f]{16})$/;

/** The checkpoint a mark names (see {@link checkpointMark}); undefined for text that is no mark. */
export function parseCheckpointMark(mark: string): { sequence: number; sha256Prefix: string } | undefined {
  const match = markPattern.exec(mark);
  return match ? { sequence: Number(match[1]), sha256Prefix: match[2]! } : undefined;
}

interface Header {
  format: string;
  version: number;
  sequence: number;
  bytes: number;
  sha256: string;
  /** Version 2: how the body is encoded. */
  encoding?: 'gzip';
}

// Ten digits at least: the name is padded to ten, and a sequence past 9,999,999,999 is longer.
const namePattern = /^checkpoint-(\d{10,})\.json$/;
/** The temp files of checkpoint files (`<file>.tmp-<pid>-<hex>`, durableTempName: the process's tag, then the write's; `<file>.tmp-<pid>` before). */
const tempPattern = /^checkpoint-\d+\.json\.tmp-(\d+)(?:-[0-9a-f]+)?$/;
const fileName = (sequence: number): string => `checkpoint-${String(sequence).padStart(10, '0')}.json`;

export class CheckpointStore {
  constructor(
    readonly dir: string,
    private readonly keep = 3,
    private readonly compression: CheckpointCompression = 'none',
  ) {}

  private async sequences(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw this.notAFolder(error) ?? error;
    }
    return names
      .map((name) => namePattern.exec(name))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => Number(match[1]))
      .sort((a, b) => b - a);
  }

  private swept = false;
  /** Whether this process holds the folder's lock (claim): then no other process writes in it. */
  private claimed = false;
  /** The claiming run's logger, for what {@link keepClaim} finds. */
  private claimLogger: Logger | undefined;

  /** The folder's lock file: a checkpoint folder has one writing process. */
  get lockFile(): string {
    return join(this.dir, 'checkpoints.lock');
  }

  /**
   * Makes the folder this process's (`checkpoints.lock` in it, core/lock.ts) for a pipeline's run, until
   * {@link release}. A second process given the folder (two daemons started with one `checkpoint.dir`),
   * or a second pipeline of this process, is refused (TRIB_ERR_CHECKPOINT, naming the folder and the
   * holder): writing one sequence of files, each would prune the other's checkpoints.
   * Partition stores (scale_out) are shared by the group's members by design and never claimed.
   */
  claim(pipeline: string, logger: Logger): void {
    this.claimLogger = logger;
    try {
      this.claimed = takeLock(this.lockFile, `checkpoint folder ${this.dir}`, this.lockOptions(pipeline, logger));
    } catch (error) {
      throw this.refusal(error);
    }
  }

  /**
   * {@link claim}, waiting up to `wait.ms` for another host's holder: its lock is taken over once not
   * renewed for LOCK_STALE_MS (its node died). Each wait is warned. Resolves true once the run may go
   * on; false where a stop (`wait.signal`) came while the folder was another host's to wait for: the
   * run is to end as stopped before it started, the folder left to its holder.
   */
  async claimWaiting(pipeline: string, logger: Logger, wait: { ms: number; signal?: AbortSignal }): Promise<boolean> {
    this.claimLogger = logger;
    try {
      this.claimed = await takeLockWaiting(this.lockFile, `checkpoint folder ${this.dir}`, {
        ...this.lockOptions(pipeline, logger),
        waitMs: wait.ms,
        ...(wait.signal ? { signal: wait.signal } : {}),
      });
      return true;
    } catch (error) {
      // Not a refusal to report (exit 2, "remove the lock file"): its holder is live, and this run was told to stop.
      if (error instanceof LockRefusedError && error.takeoverAt !== undefined && wait.signal?.aborted) return false;
      throw this.refusal(error);
    }
  }

  private lockOptions(pipeline: string, logger: Logger): LockOptions {
    return { pipeline, logger, user: 'checkpoints', heldAs: 'used', shared: false, readOnly: 'thrown' };
  }

  /**
   * A file where the folder is, or on its way to it (ENOTDIR; EEXIST from a mkdir): no folder can be made
   * there, restart or not, so a person's to mend (exit 2; was restarts, then exit 1). Undefined for any other error.
   */
  private notAFolder(error: unknown): TributaryError | undefined {
    for (let at: unknown = error; at instanceof Error; at = at.cause) {
      const { code, syscall } = at as NodeJS.ErrnoException;
      if (code === 'ENOTDIR' || (code === 'EEXIST' && syscall === 'mkdir')) {
        return new TributaryError(
          'TRIB_ERR_CHECKPOINT',
          `the checkpoint folder ${this.dir} cannot be made: it, or a folder on its way to it, is a file (${at.message}): name another (checkpoint.dir, --checkpoint-dir)`,
          { cause: error },
        );
      }
    }
    return undefined;
  }

  private refusal(error: unknown): unknown {
    const notAFolder = this.notAFolder(error);
    if (notAFolder) return notAFolder;
    // A folder the process may not make or write in (no permission, a read-only mount) holds no checkpoint:
    // a person mends it, no restart does. A full disk (ENOSPC) or a network volume's hiccup stays a failure a restart may mend.
    const readOnly = readOnlyCause(error);
    if (readOnly) {
      return new TributaryError(
        'TRIB_ERR_CHECKPOINT',
        `the checkpoint folder ${this.dir} cannot be made or written by this process (${readOnly.message}): ${writeAccessFix(readOnly, this.dir)}, or name another (checkpoint.dir, --checkpoint-dir)`,
        { cause: error },
      );
    }
    if (!(error instanceof LockRefusedError)) return error;
    // Another host's lock is taken over in time: waiting for it mends it.
    const orWait = error.takeoverAt === undefined ? '' : ', or let the run wait for its takeover (tributary run --lock-wait, e.g. 15m)';
    return new TributaryError(
      'TRIB_ERR_CHECKPOINT',
      `${error.message}. Two pipelines writing one checkpoint folder overwrite each other's checkpoints: give each its own checkpoint.dir (or --checkpoint-dir), or stop the other; if no such process runs, remove the lock file${orWait}`,
      { cause: error },
    );
  }

  /**
   * Before each write to the folder claimed: its lock must still be this process's. A folder deleted
   * while the run wrote in it (its lock with it) is made again with its lock, warned, rather than
   * written on unlocked, where a second daemon would take it and the two prune each other's files.
   * One that another process took meanwhile is not written in: a failed checkpoint, naming it.
   */
  private keepClaim(): void {
    const lock = keepLock(this.lockFile);
    if (lock.kept === 'retaken') {
      this.claimLogger?.warn(
        { dir: this.dir, lock: this.lockFile },
        `checkpoints: the lock file ${this.lockFile} was removed while this run held the folder (the folder deleted?): taken again; the checkpoints removed with it are gone, and a restart resumes from those written from now on`,
      );
    } else if (lock.kept === 'lost') {
      const holder = lock.holder;
      const who = holder === undefined ? 'another process (its lock file is unreadable or being written)' : `pid ${holder.pid} on ${holder.host} (pipeline '${holder.pipeline}', since ${holder.since})`;
      throw new Error(
        `the checkpoint folder ${this.dir} is no longer this process's: its lock file ${this.lockFile} was removed while this run held it, and ${who} took it since. Two processes writing one folder prune each other's checkpoints: stop one of them`,
      );
    }
  }

  /** Gives the folder's lock up (see {@link claim}). */
  release(): void {
    if (this.claimed) releaseLock(this.lockFile);
    this.claimed = false;
  }

  /**
   * Whether a temp file (`*.tmp-PID-HEX`, `*.tmp-PID` before) was left by a writer that died; never one of
   * this process (isOwnTempName: its write may be under way). In the folder this process holds (claim):
   * one whose pid runs no process here, or is this process's pid (an earlier process of that pid: a
   * container's pid 1, restarted after a kill mid-write). In a folder not claimed (a scale_out partition
   * folder, shared across hosts, where a pid says nothing: every container's first process is pid 1) one
   * untouched for LOCK_STALE_MS, whatever its pid: another member may be writing it now.
   */
  private async isLeftOver(name: string, pid: number): Promise<boolean> {
    if (isOwnTempName(name)) return false;
    if (this.claimed) return pid === process.pid || !isRunning(pid);
    const modified = await stat(join(this.dir, name)).then((found) => found.mtimeMs, () => Date.now());
    return Date.now() - modified > LOCK_STALE_MS;
  }

  /**
   * Writes the body (already serialised, so it reflects the state at the moment it was taken): one
   * string, or its UTF-8 in pieces (stringifyInParts: about 1 MiB each), hashed one at a time with
   * the event loop turning between them. The pieces are not to be read once it resolved. The newest
   * `keep` checkpoints stay, and those in `retain` (sequences) whatever their age: the newest one the
   * sources' upstream is known to have acknowledged, which a restart must be able to fall back to.
   * Of the older ones, only those `removable` takes go (a folder shared by several writers, scale_out's:
   * a writer removes only files it knows no one needs). Resolves with the sequences it removed.
   */
  async write(
    body: string | readonly Uint8Array[],
    retain: ReadonlySet<number> = new Set(),
    removable: (sequence: number) => boolean = () => true,
  ): Promise<{ file: string; sequence: number; sha256: string; bytes: number; removed: number[] }> {
    try {
      return await this.writeBody(body, retain, removable);
    } catch (error) {
      throw this.writeFailure(error);
    }
  }

  /**
   * A failed write said with the folder (node's ENOSPC is only `no space left on device, write`: which
   * disk, an on-call engineer could not tell) and what mends it; its code and cause kept for the callers.
   */
  private writeFailure(error: unknown): unknown {
    if (!(error instanceof Error)) return error;
    const elsewhere = 'or name another folder (checkpoint.dir, --checkpoint-dir)';
    // Not writable: the fix said as for an output file (writeAccessFix: the user, or the read-only mount), one rule for both.
    const denied = readOnlyCause(error);
    return fileSystemErrorAt(error, `checkpoint could not be written in ${this.dir}`, {
      full: `: the file system holding it is full; free room there (it holds checkpoint.keep checkpoints and the one being written, ${this.keep + 1} in all), ${elsewhere}`,
      ...(denied ? { readOnly: `: ${writeAccessFix(denied, this.dir)}, ${elsewhere}` } : {}),
    });
  }

  private async writeBody(
    body: string | readonly Uint8Array[],
    retain: ReadonlySet<number>,
    removable: (sequence: number) => boolean,
  ): Promise<{ file: string; sequence: number; sha256: string; bytes: number; removed: number[] }> {
    if (this.claimed) this.keepClaim();
    await makeFolderDurably(this.dir);
    if (!this.swept) {
      // Half-written files of a process that died while writing (kill -9): never read, as big as a checkpoint.
      // Only those: another live process's temp file is its checkpoint in the making.
      this.swept = true;
      for (const name of await readdir(this.dir)) {
        const temp = tempPattern.exec(name);
        if (temp && (await this.isLeftOver(name, Number(temp[1])))) await rm(join(this.dir, name), { force: true });
      }
    }
    const json = typeof body === 'string' ? [Buffer.from(body)] : body;
    const pieces = this.compression === 'gzip' ? await gzipPieces(json) : json;
    const gzip = pieces !== json;
    if (gzip) reusePieces(json);
    let bytes = 0;
    for (const piece of pieces) bytes += piece.length;
    const sha256 = await sha256InParts(pieces);
    let sequence = (await this.newestSequence()) + 1;
    let header: Header;
    let file: string;
    for (;;) {
      header = { format: checkpointFormat, version: gzip ? compressedVersion : checkpointVersion, sequence, bytes, sha256, ...(gzip ? { encoding: 'gzip' as const } : {}) };
      file = join(this.dir, fileName(sequence));
      if (await createFileDurably(file, [`${JSON.stringify(header)}\n`, ...pieces])) break;
      // Another writer of the folder (a scale_out member that has not yet noticed it lost the partition)
      // took this sequence since it was read: a rename would have replaced its file, or it ours. The
      // next after the newest there now, and past this one where a listing lags behind (NFS caches them).
      sequence = Math.max(sequence, await this.newestSequence()) + 1;
    }
    if (!gzip) reusePieces(pieces); // stringifyInParts' buffers, for the next body
    const removed = (await this.sequences()).slice(this.keep).filter((old) => !retain.has(old) && removable(old));
    for (const old of removed) await rm(join(this.dir, fileName(old)), { force: true });
    return { file, sequence, sha256, bytes: bytes + JSON.stringify(header).length + 1, removed };
  }

  /**
   * The newest checkpoint that reads back intact (and that `accept` takes). Each corrupt one
   * (CorruptCheckpointError) is reported through `onCorrupt` and skipped, so a torn newest file falls
   * back to the one before it; an error reading one (EMFILE, EIO, EACCES) is thrown as it is. When there
   * are checkpoint files and not one of them reads back, it throws (TRIB_ERR_CHECKPOINT): starting
   * from nothing is for a person to decide. Files that read back but `accept` turned down give undefined.
   * `before`: only checkpoints older than that sequence (one already read and turned down).
   */
  async latest(
    onCorrupt: (file: string, reason: string) => void = () => undefined,
    accept: (checkpoint: Checkpoint) => boolean | Promise<boolean> = () => true,
    before = Infinity,
  ): Promise<Checkpoint | undefined> {
    for await (const checkpoint of this.readable(onCorrupt, before)) if (await accept(checkpoint)) return checkpoint;
    return undefined;
  }

  /**
   * The intact checkpoint of the greatest `rank` (undefined: not a candidate; ranks compare element by
   * element, the first deciding), the newest of those on a tie; corrupt ones and unreadable folders as
   * {@link latest}. Every file is read: an older one may outrank a newer one on any element. Scale-out's
   * partition restore: the file of the greatest offset the group's committed offset covers, then of its
   * latest owner. Its folder is shared, and a member that wrote late (it had not yet noticed it lost the
   * partition) may leave a newer file of a lower offset, or of the same one.
   */
  async highest(onCorrupt: (file: string, reason: string) => void, rank: (checkpoint: Checkpoint) => readonly number[] | undefined): Promise<Checkpoint | undefined> {
    let found: { checkpoint: Checkpoint; rank: readonly number[] } | undefined;
    for await (const checkpoint of this.readable(onCorrupt)) {
      const value = rank(checkpoint);
      if (value === undefined || (found && compareRanks(value, found.rank) <= 0)) continue;
      found = { checkpoint, rank: value };
    }
    return found?.checkpoint;
  }

  /**
   * The checkpoints that read back intact, newest first (see {@link latest} for corrupt ones). Run to the
   * end, it throws where there were files and none read back.
   */
  private async *readable(onCorrupt: (file: string, reason: string) => void, before = Infinity): AsyncGenerator<Checkpoint> {
    const unusable: string[] = [];
    let readable = 0;
    for (const sequence of await this.sequences()) {
      if (sequence >= before) continue;
      const file = join(this.dir, fileName(sequence));
      let checkpoint: Checkpoint;
      try {
        const read = await readCheckpointFile(file);
        checkpoint = { ...read.body, sequence, file, sha256: read.sha256 };
      } catch (error) {
        // An error reading it (EMFILE, EIO) says nothing of the file: falling back to an older one would
        // replay the outputs since, so the restore fails with it (and a restart tries again); a later
        // release's file (readCheckpointFile) fails it for a person.
        if (error instanceof TributaryError) throw error;
        if (!(error instanceof CorruptCheckpointError)) throw new Error(`checkpoint ${file} could not be read: ${(error as Error).message}`, { cause: error });
        onCorrupt(file, error.message);
        unusable.push(`${file}: ${error.message}`);
        continue;
      }
      readable++;
      yield checkpoint;
    }
    // Checkpoints that all fail to read are no reason to start from nothing (and replace every output):
    // a person decides.
    if (unusable.length > 0 && readable === 0) {
      throw new TributaryError(
        'TRIB_ERR_CHECKPOINT',
        `none of the ${unusable.length} checkpoints in ${this.dir} is usable (${unusable.join('; ')}); to start from the beginning, move them out of the folder, ` +
          "and the pipeline's `file` outputs too to keep them: a start without a checkpoint replaces them",
      );
    }
  }

  /**
   * The checkpoint a mark names ({@link checkpointMark}), if this folder holds it intact; undefined for
   * a mark of no file here (another folder's, pruned, a corrupt file: reported through `onCorrupt`).
   * An error reading it (EMFILE, EIO) is thrown, as {@link latest} does.
   */
  async marked(mark: string, onCorrupt: (file: string, reason: string) => void = () => undefined): Promise<Checkpoint | undefined> {
    const named = parseCheckpointMark(mark);
    if (!named) return undefined;
    const file = join(this.dir, fileName(named.sequence));
    let read: { body: CheckpointBody; sha256: string };
    try {
      read = await readCheckpointFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (error instanceof TributaryError) throw error;
      if (!(error instanceof CorruptCheckpointError)) throw new Error(`checkpoint ${file} could not be read: ${(error as Error).message}`, { cause: error });
      onCorrupt(file, error.message);
      return undefined;
    }
    if (!read.sha256.startsWith(named.sha256Prefix)) return undefined;
    return { ...read.body, sequence: named.sequence, file, sha256: read.sha256 };
  }

  /** The sequence of the newest checkpoint file in the folder (readable or not); 0 when none. */
  async newestSequence(): Promise<number> {
    return (await this.sequences())[0] ?? 0;
  }

  /** Whether the folder holds checkpoint files (readable or not). */
  async holdsCheckpoints(): Promise<boolean> {
    return (await this.sequences()).length > 0;
  }
}

/**
 * A checkpoint file whose contents are bad (no header, another format, a version no release writes, torn, a checksum or
 * JSON that does not hold): unlike an error reading it (EMFILE, EIO), reading it again gives the same.
 */
export class CorruptCheckpointError extends Error {
  override readonly name = 'CorruptCheckpointError';
}

/** Zlib's verdicts on the bytes themselves (not Z_MEM_ERROR, which is the process's). */
const corruptGzipCodes = new Set(['Z_DATA_ERROR', 'Z_BUF_ERROR', 'Z_NEED_DICT', 'Z_STREAM_ERROR']);

/**
 * Reads a checkpoint file. Throws {@link CorruptCheckpointError} for bad contents, TRIB_ERR_CHECKPOINT for
 * a format version a later release writes; an error reading the file (its errno's) as it comes.
 */
export async function readCheckpoint(file: string): Promise<CheckpointBody> {
  return (await readCheckpointFile(file)).body;
}

/** {@link readCheckpoint}, with the SHA-256 its header gives the body. */
async function readCheckpointFile(file: string): Promise<{ body: CheckpointBody; sha256: string }> {
  const data = await readFile(file);
  const newline = data.indexOf(10);
  if (newline < 0) throw new CorruptCheckpointError('no header line');
  let header: Header;
  try {
    header = JSON.parse(data.toString('utf8', 0, newline)) as Header;
  } catch {
    throw new CorruptCheckpointError('header is not JSON');
  }
  if (header.format !== checkpointFormat) throw new CorruptCheckpointError(`not a checkpoint (format ${String(header.format)})`);
  // A version above this build's is no damage but a later release's file (a rollback after an upgrade):
  // resuming from an older checkpoint instead would write the outputs since again, so a person decides.
  if (typeof header.version === 'number' && header.version > compressedVersion) {
    throw new TributaryError(
      'TRIB_ERR_CHECKPOINT',
      `checkpoint ${file} has format version ${header.version}, which a later release writes: this release (tributary ${tributaryVersion()}) reads versions ${checkpointVersion} and ${compressedVersion}. ` +
        'Run that release (or a later one) to resume from it; to resume from an older checkpoint with this one instead, move it out of the folder (the outputs since that one are written again)',
    );
  }
  const compressed = header.version === compressedVersion && header.encoding === 'gzip';
  if (header.version !== checkpointVersion && !compressed) {
    throw new CorruptCheckpointError(`checkpoint version ${header.version}${header.encoding ? ` (${header.encoding})` : ''} is not supported (this build reads ${checkpointVersion} and ${compressedVersion} with gzip)`);
  }
  const body = data.subarray(newline + 1);
  if (body.length !== header.bytes) throw new CorruptCheckpointError(`truncated: ${body.length} of ${header.bytes} bytes`);
  // In parts, as it was written: a large checkpoint's hash alone held the event loop ~60 ms per 30 MB.
  if ((await sha256InParts(piecesOf(body))) !== header.sha256) throw new CorruptCheckpointError('checksum mismatch');
  let json: Buffer;
  try {
    // Inflated on the thread pool, not the event loop.
    json = compressed ? await inflate(body, { chunkSize: 1 << 20 }) : body;
  } catch (error) {
    if (corruptGzipCodes.has(String((error as NodeJS.ErrnoException).code))) throw new CorruptCheckpointError(`body is not gzip: ${(error as Error).message}`);
    throw error;
  }
  try {
    return { body: JSON.parse(json.toString('utf8')) as CheckpointBody, sha256: header.sha256 };
  } catch (error) {
    if (error instanceof SyntaxError) throw new CorruptCheckpointError(`body is not JSON: ${error.message}`);
    throw error; // a body too large for a string: the process's limit, not the file's fault
  }
}

/**
 * The pieces gzip-compressed on libuv's thread pool (the event loop only hands pieces over). Level 1:
 * a soak checkpoint (30 MB, most of it base64 float32 feature vectors, which barely compress) came out
 * 2.0x smaller, 2.1x at level 6 for 2.4 times the CPU; a checkpoint of ids and counts 5.9x and 6.1x.
 */
async function gzipPieces(pieces: readonly Uint8Array[]): Promise<Buffer[]> {
  const gzip = createGzip({ level: 1, chunkSize: 1 << 20 });
  const out: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise<void>((resolveDone, reject) => {
    gzip.once('end', resolveDone);
    gzip.once('error', reject);
  });
  for (const piece of pieces) {
    if (!gzip.write(piece)) await new Promise((drained) => gzip.once('drain', drained));
  }
  gzip.end();
  await done;
  return out;
}

/**
 * checkpoint.min_pause where the file sets none: half the interval. It changes nothing while
 * checkpoints take less than half the interval (a grid point is then at least that far from the end
 * of the one before), and where they take longer it leaves the pipeline at least half an interval of
 * processing between two (Flink's default, 0, let a 45 MB checkpoint that takes 6 s with a 5 s interval
 * leave it 0.3 s: BENCHMARKS.md, "Long run").
 */
export function defaultMinPauseMs(intervalMs: number): number {
  return intervalMs / 2;
}

/**
 * The checkpoints a pipeline asks for in its `checkpoint` section, or in `dir` when given (the
 * daemon's `--checkpoint-dir`); undefined when neither.
 */
export function checkpointsOf(
  pipeline: LoadedPipeline,
  dir?: string,
): { store: CheckpointStore; intervalMs: number; minPauseMs: number; tolerableFailures: number } | undefined {
  const section = pipeline.document.checkpoint;
  const folder = dir ?? (section ? resolve(pipeline.baseDir, section.dir) : undefined);
  if (folder === undefined) return undefined;
  const tolerable = section?.tolerable_failures ?? 'unlimited';
  const intervalMs = parseDuration(section?.interval ?? '30s');
  return {
    store: new CheckpointStore(folder, section?.keep ?? 3, section?.compression ?? 'none'),
    intervalMs,
    minPauseMs: section?.min_pause === undefined ? defaultMinPauseMs(intervalMs) : parseDuration(section.min_pause),
    tolerableFailures: tolerable === 'unlimited' ? Infinity : tolerable,
  };
}

/** Ranks compared element by element (the first that differs decides; a shorter one that is a prefix ranks lower). */
function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
