import type { EntryProblem } from './plugin.js';

/** Durations in config: a number of milliseconds, or a string such as `500ms`, `30s`, `30m`, `12h`, `7d`, `2w`. */
export type Duration = string | number;

const unitMs: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * The longest duration a timer takes: Node's timers hold at most 2^31-1 ms (24.8 days) and fire after
 * 1 ms for any longer one. The settings that set a timer say it as their `maxDuration`
 * (schemas/pipeline.schema.json); a duration that is no timer's (a churn horizon of 30d) has no such bound.
 */
export const timerDurationMax = '24d';

export const durationPattern = '^\\d+(\\.\\d+)?(ms|s|m|h|d|w)$';

export function parseDuration(value: Duration): number {
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(value.trim());
  if (!match) throw new RangeError(`not a duration: '${value}' (use e.g. 500ms, 30s, 30m, 12h, 7d, 2w)`);
  return Number(match[1]) * unitMs[match[2]!]!;
}

/** The config text of `ms` in its largest whole unit (`86400000` -> `1d`, `90000` -> `90s`): parses back to `ms`. */
export function durationText(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) if (ms !== 0 && ms % unitMs[unit]! === 0) return `${ms / unitMs[unit]!}${unit}`;
  return `${ms}ms`;
}

export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms.toFixed(0)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1_000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`;
}

/**
 * A warning for an event-time span written as a bare number under a second (`horizon: 7`, `gap: 30`): a
 * number is milliseconds, so that is 7 ms, where days or minutes were most likely meant. Said at `field`;
 * written with its unit (`7d`, or `7ms` where milliseconds are meant) it is not said. Undefined for a
 * string, 0 (none) or a number of a second or more.
 */
export function bareMillisecondsWarning(field: string, value: Duration | undefined): EntryProblem | undefined {
  if (typeof value !== 'number' || !(value > 0) || value >= 1_000) return undefined;
  return {
    field,
    severity: 'warning',
    message: `${value} is ${value} milliseconds (a bare number is milliseconds): write its unit (${value}d, ${value}h, ${value}m or ${value}s), or ${value}ms where milliseconds are meant`,
  };
}
