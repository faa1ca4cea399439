/**
 * Digest of every output of the sessionize bench's pipeline (file source -> sessionizer and all
 * feature operators): each event's session context and feature names/values and each session
 * summary, in sink order. A check for speed work: the digest must not move.
 *
 *   node dist/bench/sessionize-digest.js [events=1000000] [users=100000] [hash|count]
 *
 * `count` only counts, and prints the run's wall and CPU milliseconds (for A/B timing and CPU
 * profiles of the pipeline alone). With SESSIONIZE_INPUT set, that JSONL file is used (written first
 * if missing), so alternating runs of two builds read the same file; SESSIONIZE_STAGES replaces the
 * `stages:` YAML (to time a subset).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { join } from 'node:path';
import { defineSink, loadPipeline, MetricsHub, PipelineRunner, type StreamRecord } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';
import { sessionizeStagesYaml, writeSyntheticEvents } from './data.js';

const events = Number(process.argv[2] ?? 1_000_000);
const users = Number(process.argv[3] ?? 100_000);
const hashing = (process.argv[4] ?? 'hash') === 'hash';
const dir = mkdtempSync(join(tmpdir(), 'tributary-digest-'));
const input = process.env['SESSIONIZE_INPUT'] ?? join(dir, 'events.jsonl');
if (!existsSync(input)) await writeSyntheticEvents(input, events, users);
const registry = await builtinRegistry();
const eventHash = createHash('sha256');
const sessionHash = createHash('sha256');
let counted = 0;
let sessions = 0;
registry.register(
  defineSink<Record<string, never>>({
    name: 'digest', summary: 'Hashes records (bench).', config: { type: 'object', properties: {} },
    create: () => ({
      write: (record: StreamRecord) => {
        if (record.kind === 'session') {
          sessions++;
          if (hashing) sessionHash.update(JSON.stringify(record));
          return;
        }
        counted++;
        if (!hashing) return;
        const e = record as unknown as { userId: string; time: number; session: unknown; features: { names: readonly string[]; values: Float32Array } };
        eventHash.update(`${e.userId}|${e.time}|${JSON.stringify(e.session)}|${e.features.names.length}|`);
        eventHash.update(new Uint8Array(e.features.values.buffer, e.features.values.byteOffset, e.features.values.byteLength));
      },
      close: async () => undefined,
    }),
  }),
  'bench',
);
const yaml = `name: digest
sources: [{type: file, path: ${input}, mapping: {time_format: epoch_ms}}]
${process.env['SESSIONIZE_STAGES'] ?? sessionizeStagesYaml}
sinks: [{type: digest}]
`;
const loaded = await loadPipeline(join(dir, 'digest.yaml'), { registry, text: yaml, env: {} });
const runner = new PipelineRunner(loaded, { logger: silentLogger, metrics: new MetricsHub() });
let gcMs = 0;
let gcs = 0;
const gcKinds: Record<string, number> = {};
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMs += entry.duration;
    gcs++;
    const kind = String((entry as unknown as { detail?: { kind?: number } }).detail?.kind);
    gcKinds[kind] = (gcKinds[kind] ?? 0) + Math.round(entry.duration);
  }
});
gcObserver.observe({ entryTypes: ['gc'] });
const cpuBefore = process.cpuUsage();
const start = performance.now();
const stats = await runner.run();
const wallMs = performance.now() - start;
const cpu = process.cpuUsage(cpuBefore);
await new Promise((resolve) => setImmediate(resolve)); // the last gc entries
gcObserver.disconnect();
console.log(JSON.stringify({ wallMs: Math.round(wallMs), cpuMs: Math.round((cpu.user + cpu.system) / 1000), gcMs: Math.round(gcMs), gcs, gcKinds, events: counted, sessions, deadLettered: stats.deadLettered, eventDigest: eventHash.digest('hex').slice(0, 16), sessionDigest: sessionHash.digest('hex').slice(0, 16) }));
rmSync(dir, { recursive: true, force: true });
