/**
 * SIGINT and SIGTERM from the process's first moment. The `tributary` command catches them before it
 * loads anything (main.ts, before it loads the rest), so that a signal while it loads its modules and
 * pipelines (a second or more: the plugins, TensorFlow) no longer kills it with 143 and no word, where
 * a later one drains and prints the summary. Until a command takes them over ({@link takeSignals}:
 * `run`) they are kept; a command that does not ({@link releaseSignals}: every other) gets their
 * default action back, and one that came meanwhile acts then.
 *
 * SIGHUP too, whose default action also ends the process: `run` and `backtest` answer it by opening
 * their file outputs again (log rotation), which exist only once the pipelines are loaded
 * ({@link takeHangups}); one that came before is dropped, as the outputs open after it, at their paths.
 */
const kept: NodeJS.Signals[] = [];
let handler: ((signal: NodeJS.Signals) => void) | undefined;
let caught = false;

const onSignal = (signal: NodeJS.Signals): void => {
  if (handler) handler(signal);
  else kept.push(signal);
};

/** Keeps SIGINT and SIGTERM from now on, for the command that takes them over. */
export function catchSignals(): void {
  if (caught) return;
  caught = true;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  catchHangups();
}

let hangupsCaught = false;
let hangupsTaken = false;
let hangupKept = false;
let reopenOutputs: (() => void) | undefined;

const onHangup = (): void => {
  if (hangupsTaken) reopenOutputs?.();
  else hangupKept = true;
};

function catchHangups(): void {
  if (hangupsCaught) return;
  hangupsCaught = true;
  process.on('SIGHUP', onHangup);
}

/**
 * From now on, to the end of the process, SIGHUP calls `reopen` (without one: is ignored), and ends
 * nothing. One that came before is dropped: there was nothing open yet to reopen.
 */
export function takeHangups(reopen?: () => void): void {
  catchHangups();
  hangupsTaken = true;
  hangupKept = false;
  reopenOutputs = reopen;
}

/** Gives SIGHUP its default action back, unless a command took it over (takeHangups); one kept meanwhile is raised again, and acts so. */
export function releaseHangups(): void {
  if (!hangupsCaught || hangupsTaken) return;
  hangupsCaught = false;
  process.off('SIGHUP', onHangup);
  if (hangupKept) {
    hangupKept = false;
    process.kill(process.pid, 'SIGHUP');
  }
}

/**
 * Hands SIGINT and SIGTERM to `handle` until the returned function is called (which gives them their
 * default action back). A signal kept before is handed over at once.
 */
export function takeSignals(handle: (signal: NodeJS.Signals) => void): () => void {
  catchSignals();
  handler = handle;
  for (const signal of kept.splice(0)) handle(signal);
  return releaseSignals;
}

/** Gives SIGINT and SIGTERM their default action back; one kept meanwhile is raised again, and acts so. */
export function releaseSignals(): void {
  if (!caught) return;
  caught = false;
  handler = undefined;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  for (const signal of kept.splice(0)) process.kill(process.pid, signal);
}
