/**
 * The DIGINETICA sample (CIKM Cup 2016, ../shared/data/diginetica; see its README) as one stream of
 * Tributary events: `node dist/bench/diginetica.js OUT.jsonl` writes the file pipelines/intent-diginetica.yaml
 * reads; bench/models.ts writes it for its comparison.
 *
 * The data gives no clock time: a view's `timeframe` is milliseconds since its session's start and
 * `eventdate` the session's date, so an event's time is that date's midnight (UTC) plus its timeframe.
 * Purchases come from train-purchases.csv, joined on the session id, timed the same way from the views'
 * date (their own `eventdate` is the purchase's day, their timeframe still from the session's start).
 * `user_id` is often NA: such a session's user is the session itself (`s<id>`), so a user's features
 * never mix two people. The lines are sorted by time (then by session and input order), as a live
 * stream would bring them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseCsvRun } from '../core/csv-records.js';

export interface DigineticaStream {
  events: number;
  views: number;
  purchases: number;
  sessions: number;
  /** Sessions of the views file with at least one purchase in the purchases file. */
  buyingSessions: number;
}

/** Rows of a `;`-separated file with a header, read as the file source reads CSV (parseCsvRun: the whole file is one run of records). */
function rows(path: string): Record<string, string>[] {
  const [header, ...records] = parseCsvRun(readFileSync(path), { delimiter: ';', quote: '"', atFileStart: true });
  const names = header!.fields;
  return records.map(({ fields }) => Object.fromEntries(names.map((name, i) => [name, fields[i] ?? ''])));
}

const dayStart = (date: string): number => {
  const ms = Date.parse(`${date}T00:00:00Z`);
  if (!Number.isFinite(ms)) throw new Error(`diginetica: unreadable eventdate ${JSON.stringify(date)}`);
  return ms;
};

export function writeDigineticaEvents(folder: string, out: string): DigineticaStream {
  const views = rows(join(folder, 'sample_train-item-views.csv'));
  const sessions = new Map<string, { user: string; day: number }>();
  type Line = { time: number; session: string; order: number; json: string };
  const lines: Line[] = [];
  for (const view of views) {
    const session = view.session_id!;
    const known = sessions.get(session) ?? { user: view.user_id && view.user_id !== 'NA' ? view.user_id : `s${session}`, day: dayStart(view.eventdate!) };
    sessions.set(session, known);
    const time = known.day + Number(view.timeframe);
    lines.push({ time, session, order: lines.length, json: JSON.stringify({ user_id: known.user, session_id: session, time, type: 'view', item_id: view.item_id }) });
  }
  const buying = new Set<string>();
  let purchases = 0;
  for (const purchase of rows(join(folder, 'train-purchases.csv'))) {
    const known = sessions.get(purchase.sessionId!);
    if (!known) continue; // a session outside the sample
    buying.add(purchase.sessionId!);
    purchases++;
    const time = known.day + Number(purchase.timeframe);
    lines.push({ time, session: purchase.sessionId!, order: lines.length, json: JSON.stringify({ user_id: known.user, session_id: purchase.sessionId, time, type: 'purchase', item_id: purchase.itemId }) });
  }
  lines.sort((a, b) => a.time - b.time || (a.session < b.session ? -1 : a.session > b.session ? 1 : a.order - b.order));
  writeFileSync(out, lines.map((line) => line.json).join('\n') + '\n');
  return { events: lines.length, views: views.length, purchases, sessions: sessions.size, buyingSessions: buying.size };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: node dist/bench/diginetica.js OUT.jsonl [FOLDER (default ../shared/data/diginetica)]');
    process.exit(2);
  }
  const { packageRoot } = await import('../core/paths.js');
  const stream = writeDigineticaEvents(process.argv[3] ?? join(packageRoot, '../shared/data/diginetica'), out);
  console.log(JSON.stringify(stream));
}
