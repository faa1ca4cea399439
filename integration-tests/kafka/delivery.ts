/**
 * The daemon pipeline the delivery and outage tests run (a kafka source, a kafka sink and a dead-letter
 * topic), and the check that a committed output holds each record once.
 */
import assert from 'node:assert/strict';
import type { Message } from 'node-rdkafka';
import { readTopic, values } from './client.js';

export function pipelineYaml(input: string, output: string, dlq: string, guarantee: string, extra = ''): string {
  return `
name: delivery-${guarantee}
sources:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topics: [${input}]
    group: g-${input}
    guarantee: ${guarantee}
    mapping: { attributes: [seq] }
    # The killed instance leaves the group after 6 s instead of librdkafka's default 45 s, so the
    # restarted one gets the partitions sooner.
    options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500 }
sinks:
  - type: kafka
    brokers: \${KAFKA_BROKERS}
    topic: ${output}
    guarantee: ${guarantee}
    transactional_id: tx-${output}
dead_letter:
  type: kafka
  brokers: \${KAFKA_BROKERS}
  topic: ${dlq}
  guarantee: ${guarantee}
  transactional_id: tx-${output}
settings:
  max_in_flight: 256
  commit_interval: 100ms
${extra}`;
}

/**
 * Each of `seq` 0 to count - 1 exactly once in the topic's committed output. Duplicates are named by
 * where their copies are (partition/offset ranges of each copy, first and later): the offsets tell which
 * transaction wrote each copy (a transaction's records are contiguous, its marker after them) when
 * matched with the daemon's log.
 */
export async function assertEachOnce(brokers: string, topic: string, count: number): Promise<void> {
  // To the end (else it throws): a read cut short by its timeout could miss the duplicates this looks for.
  const messages = await readTopic(brokers, topic, { committed: true, toEnd: true, timeoutMs: 15_000 });
  const out = values<{ attrs: { seq: number } }>(messages).map((v) => v.attrs.seq);
  assert.equal(new Set(out).size, count, 'no record lost');
  assert.equal(out.length, count, `committed output has duplicates: ${out.length - count}${out.length > count ? `: ${duplicatesWhere(messages, out)}` : ''}`);
}

/** Where the duplicated seqs' copies are in the output: per partition, the offset ranges of first copies and of later ones. */
function duplicatesWhere(messages: readonly Message[], seqs: readonly number[]): string {
  const seen = new Map<number, number>();
  // The how-many-th copy of its seq each message is, in the order read (each partition in offset order).
  const copy = seqs.map((seq) => {
    const n = (seen.get(seq) ?? 0) + 1;
    seen.set(seq, n);
    return n;
  });
  const duplicated = (i: number): boolean => seen.get(seqs[i]!)! > 1;
  const where: string[] = [];
  for (const partition of [...new Set(messages.map((m) => m.partition))].sort((a, b) => a - b)) {
    const ranges: string[] = [];
    let run: { copy: number; from: number; to: number; seqFrom: number; seqTo: number } | undefined;
    const end = (): void => {
      if (run) ranges.push(`${run.copy === 1 ? 'first copies' : `copies ${run.copy}`} at offsets ${run.from}-${run.to} (seq ${run.seqFrom}-${run.seqTo})`);
      run = undefined;
    };
    messages.forEach((message, i) => {
      if (message.partition !== partition) return;
      if (!duplicated(i)) return end();
      if (run?.copy === copy[i]) {
        run.to = message.offset;
        run.seqTo = seqs[i]!;
      } else {
        end();
        run = { copy: copy[i]!, from: message.offset, to: message.offset, seqFrom: seqs[i]!, seqTo: seqs[i]! };
      }
    });
    end();
    if (ranges.length > 0) where.push(`partition ${partition}: ${ranges.join(', ')}`);
  }
  return where.join('; ');
}
