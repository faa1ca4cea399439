/**
 * Scale-out over two co-partitioned Kafka topics (clicks and orders, one partition count, both keyed by user):
 * the pipeline each member runs, a member daemon that follows the partitions it holds from its log, the
 * phases of input, and what each task's state file says. Shared by the kafka-scale-co-partitioned* tests.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CheckpointStore } from 'tributary';
import { startDaemon } from './env.js';
import type { RawRecord } from './client.js';

export const base = Date.parse('2024-05-01T00:00:00Z');
export const users = 24;
export const partitions = 4;

export interface CoPipeline {
  clicks: string;
  orders: string;
  output: string;
  guarantee: 'exactly-once' | 'at-least-once';
  member: string;
  dir: string;
  /** Outputs: session summaries (a sessionizer), or the events themselves with their `seq` attribute. */
  outputs?: 'sessions' | 'events';
  checkpointInterval?: string;
  /** settings.restart.backoff: a member that lost its partitions mid-transaction restarts at once. */
  restartBackoff?: string;
}

export function pipelineYaml({ clicks, orders, output, guarantee, member, dir, outputs = 'sessions', checkpointInterval = '300ms', restartBackoff }: CoPipeline): string {
  const attributes = outputs === 'events' ? ', attributes: [seq]' : '';
  const source = (topic: string, mapping: string): string => `
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${topic}]
    group: g-${clicks}
    guarantee: ${guarantee}
    start_from: earliest
    key_field: user_id
    mapping: ${mapping}
    watermark: { max_out_of_orderness: 0s, idle_timeout: 2s }
    # A stopped member's partitions move at once (it leaves the group); a lost one's after 6 s.
    options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500 }`;
  return `
name: scale-co
sources:${source(clicks, `{ fields: { user_id: user_id, time: time, type: type }${attributes} }`)}${source(orders, `{ fields: { user_id: customer_id, time: created_at, price: total }, default_type: purchase${attributes} }`)}
${outputs === 'sessions' ? 'stages:\n  - { type: sessionizer, gap: 30m }\n' : ''}sinks:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topic: ${output}
    kinds: [${outputs === 'sessions' ? 'session' : 'event'}]
    guarantee: ${guarantee}
    transactional_id: tx-${output}-${member}
${restartBackoff === undefined ? '' : `settings:\n  restart: { backoff: ${restartBackoff} }\n`}dead_letter: { type: file, path: ${join(dir, `dead-letters-${member}.jsonl`)} }
checkpoint: { dir: ${join(dir, `checkpoints-${member}`)}, interval: ${checkpointInterval} }
scale_out: { state_dir: ${join(dir, 'partition-state')} }
`;
}

export interface CoMember {
  process: ChildProcess;
  log: string[];
  /** The partitions (of both topics) it holds, from its log. */
  held: Set<string>;
}

export function startMember(file: string, brokers: string): CoMember {
  const log: string[] = [];
  const child = startDaemon(file, brokers, log, ['--log-level', 'info']);
  const daemon: CoMember = { process: child, log, held: new Set() };
  let pending = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line.includes('kafka partitions')) continue;
      const entry = JSON.parse(line) as { msg: string; partitions: (string | { id: string })[] };
      const ids = entry.partitions.map((p) => (typeof p === 'string' ? p : p.id));
      if (entry.msg === 'kafka partitions assigned') for (const id of ids) daemon.held.add(id);
      else if (entry.msg.startsWith('kafka partitions revoked') || entry.msg.startsWith('kafka partitions lost')) for (const id of ids) daemon.held.delete(id);
    }
  });
  return daemon;
}

/** The member's log lines (JSON) whose message starts with `msg`. */
export function logLines(daemon: CoMember, msg: string): Record<string, unknown>[] {
  // Joined first: a chunk of stderr may end inside a line.
  return daemon.log
    .join('')
    .split('\n')
    .filter((line) => line.includes(msg))
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        return String(entry['msg']).startsWith(msg) ? [entry] : [];
      } catch {
        return [];
      }
    });
}

/** The member's failed transactions, as its log says them (their errors). */
export function refusedCommits(daemon: CoMember): string[] {
  return logLines(daemon, 'kafka transaction failed').map((entry) => String(entry['err']));
}

/** Two clicks of every user `minute` minutes into their sessions (user u lives in partition u % 4 of both topics). */
export const clicksAt = (minute: number): RawRecord[] =>
  Array.from({ length: users * 2 }, (_, i) => {
    const user = i % users;
    const time = base + (minute + Math.floor(i / users)) * 60_000 + user * 1_000;
    return { partition: user % partitions, key: `u${user}`, value: JSON.stringify({ user_id: `u${user}`, time: new Date(time).toISOString(), type: 'view' }) };
  });

/** One order of every user, from the order service's schema. */
export const ordersAt = (minute: number, phase: number): RawRecord[] =>
  Array.from({ length: users }, (_, user) => ({
    partition: user % partitions,
    key: `u${user}`,
    value: JSON.stringify({ order_id: `o${phase}-${user}`, customer_id: `u${user}`, created_at: new Date(base + minute * 60_000 + user * 1_000).toISOString(), total: 10 + user }),
  }));

/** A click far later on every partition of the clicks topic: it closes every open session. */
export const sessionClosers = (): RawRecord[] =>
  Array.from({ length: partitions }, (_, p) => ({ partition: p, key: `close-${p}`, value: JSON.stringify({ user_id: `close-${p}`, time: new Date(base + 3 * 3_600_000).toISOString(), type: 'view' }) }));

/** Each task's newest state file's offsets of both topics (undefined: no file yet). */
export async function savedOffsets(stateDir: string, clicks: string, orders: string): Promise<({ clicks?: number; orders?: number } | undefined)[]> {
  return Promise.all(
    Array.from({ length: partitions }, async (_, p) => {
      const saved = await new CheckpointStore(join(stateDir, `${clicks}-${p}+${orders}-${p}`)).latest();
      if (!saved) return undefined;
      const [ofClicks, ofOrders] = Object.values(saved.sources) as { offset?: number }[];
      return { clicks: ofClicks?.offset, orders: ofOrders?.offset };
    }),
  );
}
