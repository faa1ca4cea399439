/**
 * Scale-out over two co-partitioned Kafka topics (clicks and orders, one partition count, both keyed by user):
 * the pipeline each member runs, a member daemon that follows the partitions it holds from its log, the
 * phases of input, and what each task's state file says. Shared by the kafka-scale-co-partitioned* tests.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointStore } from 'tributary';
import { daemonStarted, followPartitions, startDaemon, uniqueTopic } from './env.js';
import { createTopic, produce, type RawRecord } from './client.js';

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
  followPartitions(child, (msg, ids) => {
    if (msg === 'kafka partitions assigned') for (const id of ids) daemon.held.add(id);
    else if (msg.startsWith('kafka partitions revoked') || msg.startsWith('kafka partitions lost')) for (const id of ids) daemon.held.delete(id);
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

/** A two-member test's setting: its topics made, each member's pipeline file written in a temporary folder. */
export interface CoSetting {
  clicks: string;
  orders: string;
  output: string;
  dir: string;
  stateDir: string;
  files: [string, string];
  /** Whether every task's newest state file holds `phases` phases of both topics' input (clicksAt, ordersAt). */
  checkpointed: (phases: number) => () => Promise<boolean>;
}

/** The topics `<name>-clicks-…`, `-orders-`, `-out-` (unique), and members a and b's pipelines over them. */
export async function coSetting(brokers: string, name: string, guarantee: CoPipeline['guarantee']): Promise<CoSetting> {
  const clicks = uniqueTopic(`${name}-clicks-${guarantee}`);
  const orders = uniqueTopic(`${name}-orders-${guarantee}`);
  const output = uniqueTopic(`${name}-out-${guarantee}`);
  for (const topic of [clicks, orders, output]) await createTopic(brokers, topic, partitions);
  const dir = mkdtempSync(join(tmpdir(), `tributary-scale-${name}-`));
  const [a, b] = (['a', 'b'] as const).map((member) => {
    const file = join(dir, `${member}.yaml`);
    writeFileSync(file, pipelineYaml({ clicks, orders, output, guarantee, member, dir }));
    return file;
  });
  const stateDir = join(dir, 'partition-state');
  const perPartition = users / partitions;
  const checkpointed = (phases: number) => async () =>
    (await savedOffsets(stateDir, clicks, orders)).every((saved) => saved !== undefined && (saved.clicks ?? 0) >= phases * 2 * perPartition && (saved.orders ?? 0) >= phases * perPartition);
  return { clicks, orders, output, dir, stateDir, files: [a!, b!], checkpointed };
}

/**
 * Phase 1: member A alone holds every task, and its checkpoints save phase 1 of each with both topics' offsets;
 * then member B joins, and the range assignor gives it partition p of both topics together. Each member goes into
 * `daemons` as it starts, for the test's cleanup.
 */
export async function splitBetweenTwo(setting: CoSetting, brokers: string, daemons: CoMember[]): Promise<[CoMember, CoMember]> {
  const { clicks, orders, files, checkpointed } = setting;
  const a = startMember(files[0], brokers);
  daemons.push(a);
  await produce(brokers, clicks, clicksAt(0));
  await produce(brokers, orders, ordersAt(2, 1));
  await daemonStarted(a.process, undefined, 'member A to checkpoint phase 1 of every task', checkpointed(1), 200);
  const b = startMember(files[1], brokers);
  daemons.push(b);
  await daemonStarted(b.process, undefined, 'the group to split the tasks', () => a.held.size > 0 && b.held.size > 0 && a.held.size + b.held.size === 2 * partitions, 100);
  return [a, b];
}
