/**
 * What a sessionizer's summaries carry beyond core's SessionSummary (see docs/operators.md): the ids a
 * merge absorbed (`replaces`) and why the session closed (`closedBy`). Read defensively: summaries may
 * come from elsewhere (a topic another pipeline wrote), without them.
 */
import type { SessionSummary } from 'tributary';

export type SessionizerSummary = SessionSummary & { replaces?: unknown; closedBy?: unknown };

/** The ids of the sessions a late event merged into this one (none when the summary lists none). */
export function mergedAwayIds(summary: SessionizerSummary): string[] {
  return Array.isArray(summary.replaces) ? summary.replaces.filter((id): id is string => typeof id === 'string') : [];
}

/**
 * The session was cut before its gap passed: the input ended (`end_of_input`) or the sessionizer's
 * `max_open_sessions` closed it early (`evicted`; its later events start another session). Whether it
 * would have gone on to buy is not known.
 */
export function closedEarly(summary: SessionizerSummary): boolean {
  return summary.closedBy === 'end_of_input' || summary.closedBy === 'evicted';
}
