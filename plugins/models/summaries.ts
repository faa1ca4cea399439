/**
 * Reading a summary's `replaces` (the ids a merge absorbed) and `closedBy` (why the session closed). Read
 * defensively: summaries may come from elsewhere (a topic another pipeline wrote), without them or with
 * other values than their type says.
 */
import type { SessionSummary } from 'tributary';

/** The ids of the sessions a late event merged into this one (none when the summary lists none). */
export function mergedAwayIds(summary: SessionSummary): string[] {
  const replaces: unknown = summary.replaces;
  return Array.isArray(replaces) ? replaces.filter((id): id is string => typeof id === 'string') : [];
}

/**
 * The session was cut before its gap passed: the input ended (`end_of_input`) or the sessionizer's
 * `max_open_sessions` closed it early (`evicted`; its later events start another session). Whether it
 * would have gone on to buy is not known.
 */
export function closedEarly(summary: SessionSummary): boolean {
  return summary.closedBy === 'end_of_input' || summary.closedBy === 'evicted';
}
