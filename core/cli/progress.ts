import type { Logger } from 'pino';
import type { RunStats } from '../runtime/pipeline.js';

/**
 * How `run` and `backtest` show their progress: a line (or bar) redrawn in place on a terminal; where
 * stderr is not a terminal the logs are JSON lines, which a redrawn line would cut into, so there it is a
 * log record every `--progress-interval`, and only when `--progress` asks for it (a pipe or a log file
 * gets no progress unasked, as no one watches it).
 */
export type ProgressForm = 'redrawn' | 'records' | 'none';

export function progressForm(flag: boolean | undefined, terminal: boolean): ProgressForm {
  if (flag === false) return 'none';
  if (terminal) return 'redrawn';
  return flag === true ? 'records' : 'none';
}

/** How often a progress record is written where stderr is not a terminal: a log line, not a redraw. */
export const defaultProgressInterval = '10s';

/** One pipeline's progress as a log record's fields (`progress: true` tells it from other records). */
export interface ProgressRecord {
  progress: true;
  pipeline: string;
  eventsIn: number;
  recordsOut: number;
  deadLettered: number;
  /** This process's events per second so far (null when no time passed). */
  eventsPerSecond: number | null;
  /** The sources' event-time watermark, ISO 8601 (null before the first event). */
  watermark: string | null;
  /** The watermark the stages passed on to the sinks (RunStats.passedWatermark): below `watermark` while a stage holds it back. */
  passedWatermark: string | null;
  /** `backtest`: input records read (events and rejects) of the input file's `total`. */
  done?: number;
  total?: number;
}

/**
 * Writes `take()`'s records at info every `intervalMs`, until the returned function is called (pass
 * run.ts's `resultLogger`: they were asked for, so written whatever `--log-level`). The timer keeps no
 * process alive.
 */
export function writeProgressRecords(logger: Logger, intervalMs: number, take: () => { fields: ProgressRecord; message: string }[]): () => void {
  const timer = setInterval(() => {
    for (const { fields, message } of take()) logger.info(fields, message);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** A watermark as a progress line or record shows it: ISO 8601 to the second, or null before any event. */
export const watermarkShown = (watermark: number): string | null => (Number.isFinite(watermark) ? new Date(watermark).toISOString().replace('.000Z', 'Z') : null);

/**
 * A run's watermarks as its progress shows them: the record's fields, and the words of a line or message,
 * which name the one the stages passed on only while a stage holds it back (else it is the same).
 */
export function watermarkProgress(stats: Pick<RunStats, 'watermark' | 'passedWatermark'>): { fields: Pick<ProgressRecord, 'watermark' | 'passedWatermark'>; text: string } {
  const watermark = watermarkShown(stats.watermark);
  const passedWatermark = watermarkShown(stats.passedWatermark);
  const held = stats.passedWatermark < stats.watermark && stats.watermark !== Infinity;
  return { fields: { watermark, passedWatermark }, text: `${watermark ?? '-'}${held ? ` (held at ${passedWatermark ?? '-'})` : ''}` };
}

/**
 * A redrawn progress line cut to fit one row of a terminal `columns` wide (unknown: as it is). `\r\x1b[2K`
 * clears only the cursor's row, so a line that wrapped left its first rows stale at every redraw. Cut to
 * `columns - 1`, ending in `…`: a line filling the last column leaves the cursor pending a wrap on some
 * terminals. By code points (no surrogate pair split); a wide character counts as one, which only cuts late.
 */
export function fitToTerminal(line: string, columns: number | undefined): string {
  if (columns === undefined || !Number.isFinite(columns) || columns < 2) return line;
  const room = columns - 1;
  const chars = Array.from(line);
  if (chars.length <= room) return line;
  return `${chars.slice(0, room - 1).join('')}…`;
}
