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
