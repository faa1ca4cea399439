/**
 * Lock files: one process at a time owns a thing on disk (an output file, a checkpoint folder).
 *
 * A lock is a file (`<file>.lock` beside an output, `<dir>/checkpoints.lock` in a checkpoint folder)
 * holding its taker's pid, host, pipeline, and (Linux) the boot and the start time of its process and its
 * pid namespace, so
 * a second process is refused at its start, naming the thing and the holder, instead of overwriting
 * the first one's work under it. It appears whole or not at all: written to a temp file first, then
 * hard-linked to its name (link fails where the name exists, as O_EXCL does), so a process killed as
 * it takes a lock never leaves an empty or half-written one. (One that older versions left, created
 * empty with O_EXCL and killed before writing it, is taken over once a moment old: its writer wrote
 * at once or never.) A lock left by a process that died (kill -9) is taken over with a warning: same
 * host, and its pid gone, or running a process that started at another time (the pid was reused), or
 * our own pid (an earlier process: a container restarted in a new pid namespace is often pid 1 again;
 * two live containers sharing a host name and a folder are not told apart). Where the lock says not
 * when its process started (an older lock) and the pid runs, that cannot be told: refused, the message
 * says to remove it. Another host's lock its holder stopped renewing (its mtime, touched every
 * LOCK_RENEW_MS while held) LOCK_STALE_MS ago is taken over too: a pod rescheduled under a new name
 * after its node died. Takers of one stale
 * lock take it over one at a time (removeStaleLock), so only one of them gets it. Released by its
 * last user in the process, and at process exit.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsConstants, linkSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, unlinkSync, utimesSync, writeSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { makeFolderDurablySync, noHardLinks } from './durable.js';
import { sameFile } from './paths.js';

/** What a lock file holds. */
export interface LockHolder {
  pid: number;
  host: string;
  pipeline: string;
  since: string;
  /** The holder process's boot and start time (`<boot id>:<clock ticks since boot>`, /proc); absent where not known. */
  started?: string;
  /**
   * The pid namespace its pid is of (`pid:[INODE]`, /proc/self/ns/pid); absent where not known (and in
   * locks of older versions). Containers sharing a host name (host network, a set hostname) each have
   * their own: a pid of another one says nothing here.
   */
  pidNamespace?: string;
}

export interface LockOptions {
  /** The pipeline taking it: written into the lock, named to whoever is refused. */
  pipeline: string;
  logger: Logger;
  /** Whose lock it is, in log lines (`file sink`, `checkpoints`). */
  user: string;
  /** How the holder has the thing, in a refusal: `<thing> is <heldAs> by pid ...` (`written`, `used`). */
  heldAs: string;
  /**
   * Whether other takers in this process share it (sinks of one process writing one file) or are
   * refused as another process's would be (two pipelines of one process given one checkpoint folder).
   */
  shared: boolean;
  /**
   * Where no lock file can be created because the folder is read-only to this process (EROFS, EACCES,
   * EPERM): `unlocked` (the default) warns and lets the thing go unlocked (an output file that may be
   * written where no new file can be made); `thrown` throws that error, for the taker to say (a
   * checkpoint folder, whose every checkpoint is a file made in it).
   */
  readOnly?: 'unlocked' | 'thrown';
}

/** A lock another process holds (or, not shared, another taker of this process): the message names the thing and the holder. */
export class LockRefusedError extends Error {
  override readonly name = 'LockRefusedError';

  /**
   * @param takeoverAt when the lock is taken over unless its holder renews it before (another host's
   *   lock); absent where waiting would not get it (a live process of this host, this process).
   * @param holderLives whether its holder is known to live where this process can tell: a process of
   *   this host whose pid runs the process that took it (its start time the lock's), or this process.
   *   Neither waiting nor a restart gets such a lock while that process runs (two daemons given one
   *   output or folder, a backtest writing a running daemon's output): a person's to mend, the run's
   *   failure one that exits 2 (needsPerson). False where the lock is changing hands (being written,
   *   being taken over by another taker: a moment mends it) or is another host's (taken over at `takeoverAt`).
   */
  constructor(
    message: string,
    readonly takeoverAt?: number,
    readonly holderLives = false,
  ) {
    super(message);
  }
}

const heldLocks = new Map<string, { users: number; holder: LockHolder }>();
let releasesAtExit = false;
const LOCK_RENEW_MS = 60_000;
/** Another host's lock not renewed for this long is taken over. */
export const LOCK_STALE_MS = 10 * 60_000;
/**
 * An empty or unreadable lock older than this is taken over: older versions created the file, then
 * wrote it at once, so one still empty after this was left by a taker killed in between.
 */
const UNREADABLE_LOCK_GRACE_MS = 2_000;

/** Errors creating a lock file that say the folder is read-only (to this process): the thing then goes unlocked (LockOptions.readOnly). */
const readOnlyCodes = new Set(['EROFS', 'EACCES', 'EPERM']);

/** The error (`error`, or one it wraps by `cause`) that says a folder is read-only to this process (EROFS, EACCES, EPERM), if any: a person's to mend. */
export function readOnlyCause(error: unknown): NodeJS.ErrnoException | undefined {
  for (let at: unknown = error; at instanceof Error; at = at.cause) if (readOnlyCodes.has(String((at as NodeJS.ErrnoException).code))) return at;
  return undefined;
}

/**
 * Takes the lock `lockPath` for `thing` (named in messages). Returns false where no lock file can be
 * created because the folder is read-only (EROFS, EACCES, EPERM): warned, and the thing goes unlocked (thrown instead where `options.readOnly` says so).
 * Any other error creating it is thrown: running unlocked on, say, ENOENT or ESTALE would let a second
 * process in. Throws {@link LockRefusedError} while another process holds it.
 */
export function takeLock(lockPath: string, thing: string, options: LockOptions): boolean {
  const held = heldLocks.get(lockPath);
  if (held !== undefined) {
    if (!options.shared) throw new LockRefusedError(`${thing} is ${options.heldAs} by this process already (pipeline '${held.holder.pipeline}'): its lock file ${lockPath} says so`, undefined, true);
    held.users++;
    return true;
  }
  const { logger, user } = options;
  const holder = holderOf(options.pipeline);
  makeFolderDurablySync(dirname(lockPath));
  removeDeadTakersTemps(lockPath);
  let tookOver: { holder: LockHolder | undefined; why: string; renewedAgo: number } | undefined;
  let refusal: string | undefined;
  let takeoverAt: number | undefined;
  let holderLives = false;
  // A few rounds: a stale lock removed can be taken by another process before us, whose lock is then judged afresh.
  for (let attempt = 0; attempt < 3 && refusal === undefined; attempt++) {
    let created: boolean;
    try {
      created = createLockFile(lockPath, holder);
    } catch (error) {
      const message = (error as Error).message;
      if (!readOnlyCodes.has(String((error as NodeJS.ErrnoException).code)) || options.readOnly === 'thrown') throw new Error(`${user}: could not create the lock file ${lockPath}: ${message}`, { cause: error });
      // A folder where the thing may be written but no lock created (read-only but for the file): unlocked.
      logger.warn({ lock: lockPath, error: message }, `${user}: could not create the lock file ${lockPath}; another process using ${thing} would not be refused`);
      return false;
    }
    if (created) {
      if (tookOver !== undefined) {
        const { holder: dead, why, renewedAgo } = tookOver;
        if (dead === undefined) logger.warn({ lock: lockPath, why }, `${user}: took over a lock file a process left unwritten`);
        else if (judgedByPid(dead, holder)) {
          const restarted = dead.pidNamespace !== undefined && dead.pidNamespace !== holder.pidNamespace ? ' (of another pid namespace: a container restarted, or one sharing this host name)' : '';
          logger.warn({ lock: lockPath, deadHolder: dead, why }, `${user}: took over the lock of a process that is gone${restarted}`);
        } else logger.warn({ lock: lockPath, staleHolder: dead, renewedSecondsAgo: Math.round(renewedAgo / 1000) }, `${user}: took over another host's lock its holder stopped renewing`);
      }
      holdLock(lockPath, holder);
      return true;
    }
    const text = readText(lockPath);
    if (text === undefined && statOf(lockPath) === undefined) continue; // released as we looked: created anew
    const other = text === undefined ? undefined : parseLock(text);
    const renewedAgo = Date.now() - (statOf(lockPath)?.mtimeMs ?? Date.now());
    const why = other === undefined ? whyUnreadableStale(renewedAgo) : whyStale(other, holder, renewedAgo);
    if (why === undefined) {
      takeoverAt = other !== undefined && !judgedByPid(other, holder) ? Date.now() - renewedAgo + LOCK_STALE_MS : undefined;
      holderLives = other !== undefined && judgedByPid(other, holder);
      const takeover = takeoverAt === undefined ? '' : `; it is taken over at ${new Date(takeoverAt).toISOString()} unless renewed before`;
      const who = other === undefined ? 'another process (its lock file is unreadable or being written)' : `pid ${other.pid} on ${other.host} (pipeline '${other.pipeline}', since ${other.since}, lock renewed ${Math.round(renewedAgo / 1000)} s ago)`;
      refusal = `${thing} is ${options.heldAs} by ${who}: its lock file ${lockPath} says so${takeover}`;
      break;
    }
    const removed = removeStaleLock(lockPath, text ?? '');
    if (removed.taker !== undefined) refusal = `${thing} is being taken over by ${removed.taker} (its lock file ${lockPath} was left by a process that is gone)`;
    else if (removed.removed) tookOver = { holder: other, why, renewedAgo };
  }
  throw new LockRefusedError(refusal ?? `${thing} is locked (${lockPath}), and its lock changed hands as this process tried to take it over`, takeoverAt, holderLives);
}

/**
 * {@link takeLock}, waiting up to `waitMs` while another host's process holds the lock: it is taken
 * over once not renewed for LOCK_STALE_MS (that process's node died), so it is tried again then, and at
 * least every LOCK_RENEW_MS, each wait warned. A lock that waiting cannot get (a live process of this
 * host), `waitMs` spent, or `signal` aborted: the refusal is thrown.
 */
export async function takeLockWaiting(lockPath: string, thing: string, options: LockOptions & { waitMs: number; signal?: AbortSignal }): Promise<boolean> {
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    try {
      return takeLock(lockPath, thing, options);
    } catch (error) {
      const left = deadline - Date.now();
      if (!(error instanceof LockRefusedError) || error.takeoverAt === undefined || left <= 0 || options.signal?.aborted) throw error;
      options.logger.warn(
        { lock: lockPath, takeoverAt: new Date(error.takeoverAt).toISOString(), waitUntil: new Date(deadline).toISOString() },
        `${options.user}: ${error.message}; waiting for it, up to ${Math.round(options.waitMs / 1000)} s in all`,
      );
      // Just past the takeover (the lock's mtime has whole-second precision on some filesystems).
      const until = Math.min(Math.max(error.takeoverAt - Date.now(), 0) + 1_000, LOCK_RENEW_MS, left);
      try {
        await sleep(until, undefined, options.signal ? { signal: options.signal } : {});
      } catch {
        throw error; // stopped while waiting: the folder is still the other's
      }
    }
  }
}

/** Gives up one use of the lock; its last user in the process removes it (if it is still this process's). */
export function releaseLock(lockPath: string): void {
  const held = heldLocks.get(lockPath);
  if (held === undefined || --held.users > 0) return;
  removeOwnLock(lockPath);
  heldLocks.delete(lockPath);
}

function holderOf(pipeline: string): LockHolder {
  const started = processStart(process.pid);
  const pidNamespace = ownPidNamespace();
  return { pid: process.pid, host: hostname(), pipeline, since: new Date().toISOString(), ...(started !== undefined ? { started } : {}), ...(pidNamespace !== undefined ? { pidNamespace } : {}) };
}

let pidNamespace: string | undefined | null = null;

/** This process's pid namespace (`pid:[INODE]`), undefined where /proc cannot say. */
function ownPidNamespace(): string | undefined {
  if (pidNamespace === null) {
    try {
      pidNamespace = readlinkSync('/proc/self/ns/pid');
    } catch {
      pidNamespace = undefined;
    }
  }
  return pidNamespace;
}

/**
 * Where a pid names one process: this host, boot and pid namespace. Hashed into the names of takers'
 * temp files ({@link takerTempName}), so that takers of hosts (or containers) sharing a folder never share one.
 */
function pidSpace(): string {
  return `${hostname()}\n${bootOf(processStart(process.pid)) ?? ''}\n${ownPidNamespace() ?? ''}`;
}

const bootOf = (started: string | undefined): string | undefined => started?.split(':')[0];

/**
 * Whether this process judges the lock's holder by its pid: one of this host. Also one of another pid
 * namespace of this host: that is, nearly always, a container restarted after a crash or an OOM kill
 * (same host name, new namespace, often the same pid 1), whose predecessor's lock must be taken at once,
 * not after LOCK_STALE_MS. Two live containers sharing a host name and a folder are not told apart so
 * (operations.md: give each its own host name, the default in Docker and Kubernetes); the namespace is
 * in the lock to say so in the warning.
 */
function judgedByPid(other: LockHolder, ours: LockHolder): boolean {
  return other.host === ours.host;
}


const takerTempPrefix = (lockPath: string): string => `${basename(lockPath)}.tmp-`;
/** `<pid>-<pid space's tag>`, after the prefix; before this version, `<pid>` alone (of any host). */
const takerTempPattern = /^(\d+)(?:-([0-9a-f]{12}))?$/;
const pidSpaceTag = (space: string): string => createHash('sha256').update(space).digest('hex').slice(0, 12);

/**
 * The temp file a taker of `lockPath` writes its lock's text to before linking it to the lock's name:
 * named for its pid and its host, so no other live process has it (with the pid alone, two hosts' takers
 * of one pid, containers' pid 1, wrote one file, and one truncated what was already the other's lock).
 */
export function takerTempName(lockPath: string, pid = process.pid, space = pidSpace()): string {
  return join(dirname(lockPath), `${takerTempPrefix(lockPath)}${pid}-${pidSpaceTag(space)}`);
}

/**
 * Creates the lock file holding `holder`, whole or not at all; false where one exists. The text goes
 * to a temp file of this process, linked to the lock's name: link, like O_EXCL, fails where the name
 * exists. A filesystem without hard links gets O_EXCL and a write (a kill between them leaves an empty
 * lock, taken over once UNREADABLE_LOCK_GRACE_MS old).
 */
function createLockFile(lockPath: string, holder: LockHolder): boolean {
  const text = `${JSON.stringify(holder)}\n`;
  const temp = takerTempName(lockPath);
  // Ours alone: one left by a process of our pid before us (killed between link and unlink, it is a
  // name of the lock that process held) is removed rather than truncated.
  removeIfThere(temp);
  writeNew(temp, text, fsConstants.O_EXCL);
  try {
    linkSync(temp, lockPath);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // NFS: a LINK retransmitted after its reply was lost answers EEXIST though the first made the name: ours then
    // (refused, this taker would wait for its own lock, and a later takeover would judge it another's).
    if (code === 'EEXIST') return sameFile(temp, lockPath);
    if (!noHardLinks.has(String(code))) throw error;
  } finally {
    removeIfThere(temp);
  }
  try {
    writeNew(lockPath, text, fsConstants.O_EXCL);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Temp files of the lock (takerTempName) that takers killed before linking them left. One of this host
 * goes once its pid runs no process; one of another host (the folder is shared), or named by its pid
 * alone, only once LOCK_STALE_MS old: a pid says nothing of it here, and a live taker links and removes
 * its own at once. (Removing another host's by its pid made that taker's link fail, and it ran unlocked.)
 */
function removeDeadTakersTemps(lockPath: string): void {
  const prefix = takerTempPrefix(lockPath);
  const ourTag = pidSpaceTag(pidSpace());
  let names: string[];
  try {
    names = readdirSync(dirname(lockPath));
  } catch {
    return;
  }
  for (const name of names) {
    const taker = name.startsWith(prefix) ? takerTempPattern.exec(name.slice(prefix.length)) : null;
    if (taker === null) continue;
    const path = join(dirname(lockPath), name);
    const pid = Number(taker[1]);
    const dead = taker[2] === ourTag ? pid !== process.pid && !isRunning(pid) : Date.now() - (statOf(path)?.mtimeMs ?? Date.now()) > LOCK_STALE_MS;
    if (dead) removeIfThere(path);
  }
}

/** Removes the file if it can: gone already (another taker removed it), or a read-only folder, is no matter here. */
function removeIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // see above
  }
}

function writeNew(path: string, text: string, flag: number): void {
  const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | flag, 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** Why a lock's holder is taken to be gone (said in the warning), or undefined while it may still hold it. */
function whyStale(other: LockHolder, ours: LockHolder, renewedAgo: number): string | undefined {
  if (!judgedByPid(other, ours)) return renewedAgo > LOCK_STALE_MS ? `not renewed for ${Math.round(renewedAgo / 60_000)} minutes` : undefined;
  // Not ours (heldLocks would have it): an earlier process given our pid (a container restarted).
  if (other.pid === process.pid) return "its pid is this process's";
  if (!isRunning(other.pid)) return 'its pid runs no process';
  // A pid runs: the holder's, or a later process given its number. The start time tells them apart.
  const startedNow = other.started === undefined ? undefined : processStart(other.pid);
  if (startedNow === undefined || startedNow === other.started) return undefined;
  return other.started!.split(':')[0] === startedNow.split(':')[0] ? 'its pid runs another process, started since' : 'the host was restarted since';
}

/** An empty or half-written lock file: stale once its taker had time to write it (see UNREADABLE_LOCK_GRACE_MS). */
function whyUnreadableStale(renewedAgo: number): string | undefined {
  return renewedAgo > UNREADABLE_LOCK_GRACE_MS ? `it is empty or unreadable, ${Math.round(renewedAgo / 1000)} s old: its taker was killed before writing it` : undefined;
}

/**
 * Removes a lock found stale (its text `stale`) unless another process took it over meanwhile. Takers of
 * one stale lock go one at a time: each first creates `<lock>.takeover-<digest of its text>` exclusively,
 * and removes the lock only if it still reads `stale`. Without that, two takers could both read it stale,
 * the first remove it and create its own, the second remove that one and create its own: both would
 * hold it. The first to come takes it; one that finds the takeover file held is refused (`taker`:
 * that one takes it). A takeover file left by a taker that died is itself taken over the same way.
 */
function removeStaleLock(lockPath: string, stale: string, depth = 0): { removed: boolean; taker?: string } {
  const takeoverPath = `${lockPath}.takeover-${createHash('sha256').update(stale).digest('hex').slice(0, 16)}`;
  const taker = holderOf('(taking over a stale lock)');
  if (!createLockFile(takeoverPath, taker)) {
    const text = readText(takeoverPath);
    const other = text === undefined ? undefined : parseLock(text);
    const renewedAgo = Date.now() - (statOf(takeoverPath)?.mtimeMs ?? Date.now());
    const deadTaker = other === undefined ? whyUnreadableStale(renewedAgo) !== undefined : whyStale(other, taker, renewedAgo) !== undefined;
    if (!deadTaker || depth > 0) return { removed: false, taker: other === undefined ? `another process (${takeoverPath})` : `pid ${other.pid} on ${other.host} (${takeoverPath})` };
    removeStaleLock(takeoverPath, text ?? '', depth + 1);
    return removeStaleLock(lockPath, stale, depth + 1);
  }
  try {
    const now = readText(lockPath);
    // Gone meanwhile (released, or taken over and released): nothing to remove, it is taken afresh. (An
    // unreadable one that is there reads as '', as it was judged.)
    if (now === undefined && statOf(lockPath) === undefined) return { removed: false };
    if ((now ?? '') !== stale) return { removed: false };
    unlinkSync(lockPath);
    return { removed: true };
  } finally {
    try {
      unlinkSync(takeoverPath);
    } catch {
      // removed by hand
    }
  }
}

function holdLock(lockPath: string, holder: LockHolder): void {
  heldLocks.set(lockPath, { users: 1, holder });
  if (releasesAtExit) return;
  releasesAtExit = true;
  // A stop that ends at shutdown_timeout (process.exit) closes nothing: its locks go all the same.
  process.once('exit', () => {
    for (const path of heldLocks.keys()) removeOwnLock(path);
  });
  // Renewed while held, so another host can tell a live holder from a dead one; unref'd: keeps no process alive.
  setInterval(() => {
    const now = new Date();
    for (const path of heldLocks.keys()) {
      try {
        utimesSync(path, now, now);
      } catch {
        // removed by hand: the next taker says so
      }
    }
  }, LOCK_RENEW_MS).unref();
}

/** Whether a lock file's holder is this one (the same taking: pid, host and when it was taken). */
const sameTaking = (found: LockHolder | undefined, ours: LockHolder): boolean => found?.pid === ours.pid && found.host === ours.host && found.since === ours.since;

/**
 * Checks that this process still holds `lockPath` (taken with {@link takeLock}) before it writes under
 * it: `held` where the file names this process. One that is gone (removed by hand: the folder deleted
 * under a running daemon) is made again, folder too, with the same holder: `retaken`, for the caller to
 * warn. Without it a second process would take the thing while this one writes on in it. `lost` where
 * the file now names another process (it took the thing once the file was gone), or where this process
 * holds no such lock.
 */
export function keepLock(lockPath: string): { kept: 'held' | 'retaken' } | { kept: 'lost'; holder: LockHolder | undefined } {
  const ours = heldLocks.get(lockPath)?.holder;
  if (ours === undefined) return { kept: 'lost', holder: undefined };
  const found = (): { kept: 'held' } | { kept: 'lost'; holder: LockHolder | undefined } => {
    const text = readText(lockPath);
    const holder = text === undefined ? undefined : parseLock(text);
    return sameTaking(holder, ours) ? { kept: 'held' } : { kept: 'lost', holder };
  };
  if (statOf(lockPath) !== undefined) return found();
  makeFolderDurablySync(dirname(lockPath));
  // Else made by another taker as we looked.
  return createLockFile(lockPath, ours) ? { kept: 'retaken' } : found();
}

/** Removes the lock if it is still this process's (not one a user removed and another process took since). */
function removeOwnLock(lockPath: string): void {
  const ours = heldLocks.get(lockPath)?.holder;
  const text = readText(lockPath);
  const found = text === undefined ? undefined : parseLock(text);
  if (ours === undefined || !sameTaking(found, ours)) return;
  try {
    unlinkSync(lockPath);
  } catch {
    // gone already
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function parseLock(text: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(text) as Partial<LockHolder>;
    if (typeof holder.pid !== 'number' || typeof holder.host !== 'string') return undefined;
    const started = typeof holder.started === 'string' ? { started: holder.started } : {};
    const pidNamespace = typeof holder.pidNamespace === 'string' ? { pidNamespace: holder.pidNamespace } : {};
    return { pid: holder.pid, host: holder.host, pipeline: String(holder.pipeline ?? '?'), since: String(holder.since ?? '?'), ...started, ...pidNamespace };
  } catch {
    return undefined;
  }
}

/**
 * Whether a process with this pid runs on this host (EPERM: it does, as another user). A zombie does
 * not: it has exited (killed with -9, say) and only waits for its parent to reap it, which a parent that
 * never waits (a shell script's background job, a container's init that reaps late) may not do for long.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !exited(pid);
}

/** Whether /proc says the pid's process has exited, unreaped (state Z, or X as it goes); false where /proc cannot say. */
function exited(pid: number): boolean {
  const state = procStatFields(pid)?.[3 - 3];
  return state === 'Z' || state === 'X';
}

/**
 * The fields of /proc/PID/stat after the command's name (in parentheses, which may hold spaces and
 * parentheses), so the line's field N is at N - 3; undefined where /proc cannot say.
 */
function procStatFields(pid: number): string[] | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
}

let bootId: string | undefined | null = null;

/**
 * When the process with this pid started, as `<boot id>:<clock ticks from boot to its start>` (Linux's
 * /proc), which a later process given the same pid does not share; undefined where /proc cannot say.
 */
function processStart(pid: number): string | undefined {
  if (bootId === null) bootId = readText('/proc/sys/kernel/random/boot_id')?.trim() || undefined;
  if (bootId === undefined) return undefined;
  // The line's 22nd field is the start time.
  const ticks = procStatFields(pid)?.[22 - 3];
  return ticks !== undefined && /^\d+$/.test(ticks) ? `${bootId}:${ticks}` : undefined;
}
