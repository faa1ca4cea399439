/**
 * A long broker outage under an exactly-once daemon with the default restart policy:
 *
 *   node dist/bench/kafka-outage.js [outageSeconds=780]
 *
 * Starts a native broker (integration-tests/kafka/broker.ts), a `tributary run` process of a kafka ->
 * kafka exactly-once pipeline with checkpoints (no `settings.restart`: the defaults), produces 1,000
 * click events each with a unique `seq` and waits for them in the committed output; then kills the
 * broker for `outageSeconds`, saying every minute what `/readyz` answers and how many restarts in the
 * process the daemon logged, restarts the broker on its ports and data, produces 1,000 more and waits
 * for all 2,000 in the committed output and for `/readyz` 200. Then SIGTERM, and the check: the daemon
 * never exited on its own, exits 0, and the committed output holds each seq once. Exits 1 otherwise.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../core/paths.js';
import { startNativeBroker } from '../integration-tests/kafka/broker.js';
import { committedSeqs, createTopic, produce, readTopic, seqRecords, values } from '../integration-tests/kafka/client.js';
import { operationsPort, waitFor } from '../integration-tests/kafka/env.js';

const outageMs = Number(process.argv[2] ?? 780) * 1000;
const started = Date.now();
const say = (line: string): void => console.log(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s ${line}`);

const broker = await startNativeBroker({ partitions: 4 });
const [input, output, dlq] = ['outage-in', 'outage-out', 'outage-dlq'];
for (const topic of [input, output, dlq]) await createTopic(broker.brokers, topic, 4);
const dir = mkdtempSync(join(tmpdir(), 'tributary-kafka-outage-'));
const file = join(dir, 'pipeline.yaml');
const kafka = (topic: string): string => `{ type: kafka, brokers: "${broker.brokers}", topic: ${topic}, guarantee: exactly-once, transactional_id: tx-outage }`;
writeFileSync(
  file,
  `name: outage
sources:
  - { type: kafka, brokers: "${broker.brokers}", topics: [${input}], group: g-outage, guarantee: exactly-once, mapping: { attributes: [seq] }, options: { session.timeout.ms: 6000, heartbeat.interval.ms: 500 } }
sinks: [${kafka(output)}]
dead_letter: ${kafka(dlq)}
checkpoint: { dir: ${join(dir, 'checkpoints')}, interval: 1s }
settings: { commit_interval: 100ms }
`,
);
const log: string[] = [];
const daemon = spawn(process.execPath, [join(packageRoot, 'dist', 'core', 'cli', 'main.js'), 'run', file, '--log-level', 'info', '--http-port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
daemon.stderr.on('data', (chunk: Buffer) => void log.push(chunk.toString()));
let exitCode: number | null | undefined;
const exited = new Promise<void>((resolve) =>
  daemon.on('exit', (code) => {
    exitCode = code;
    say(`daemon exited ${code}`);
    resolve();
  }),
);
const restarts = (): number => (log.join('').match(/restarting it in \d+ ms/g) ?? []).length;
let failed = false;
try {
  const port = await operationsPort(daemon, log);
  const readyz = async (): Promise<number | string> => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
    } catch {
      return 'no answer';
    }
  };
  await produce(broker.brokers, input, seqRecords(0, 1_000));
  await waitFor('1,000 outputs committed', async () => (await committedSeqs(broker.brokers, output)).size >= 1_000, 60_000, 500);
  say(`1,000 outputs committed, /readyz ${await readyz()}; the broker killed for ${outageMs / 1000} s`);
  await broker.kill();
  for (const until = Date.now() + outageMs; Date.now() < until; ) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(60_000, until - Date.now())));
    say(`outage: /readyz ${await readyz()}, ${restarts()} restarts in the process${exitCode !== undefined ? `, exited ${exitCode}` : ''}`);
  }
  await broker.restart();
  const back = Date.now();
  say('broker back');
  await produce(broker.brokers, input, seqRecords(1_000, 1_000));
  await waitFor('2,000 outputs committed', async () => (await committedSeqs(broker.brokers, output)).size >= 2_000, 300_000, 500);
  say(`2,000 outputs committed ${((Date.now() - back) / 1000).toFixed(1)} s after the broker came back`);
  await waitFor('ready', async () => (await readyz()) === 200, 120_000, 500);
  say(`/readyz 200; ${restarts()} restarts in the process`);
  const ownExit = exitCode;
  daemon.kill('SIGTERM');
  await exited;
  const out = values<{ attrs: { seq: number } }>(await readTopic(broker.brokers, output, { committed: true, timeoutMs: 15_000 })).map((v) => v.attrs.seq);
  const once = new Set(out).size === 2_000 && out.length === 2_000;
  failed = ownExit !== undefined || exitCode !== 0 || !once;
  say(`${failed ? 'FAIL' : 'PASS'}: SIGTERM exit ${exitCode}${ownExit !== undefined ? ` (but it had exited ${ownExit} on its own)` : ''}; committed ${out.length} outputs, ${new Set(out).size} distinct`);
} finally {
  if (exitCode === undefined) daemon.kill('SIGKILL');
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
