/**
 * The state bench/checkpoint.ts and bench/checkpoint-cost.ts measure: a generated source gives `users`
 * distinct users one event each, the first (users - open) in the first ten minutes, the last `open`
 * an hour later, then waits for input as a live source does, so the sessionizer holds `open` open
 * sessions and user-features knows every user. Public API only, so the benches measure older builds too.
 */
import { join } from 'node:path';
import { CheckpointStore, defineSource, loadPipeline, MetricsHub, PipelineRunner, type ClickEvent } from 'tributary';
import { silentLogger } from 'tributary/testing';
import { builtinRegistry } from '../core/cli/registry.js';

const t0 = Date.UTC(2024, 0, 1);

/** A fresh pipeline over that state, checkpointing into `dir`/checkpoints (its periodic timer 1 h away). */
export async function checkpointStatePipeline(name: string, dir: string, users: number, open: number): Promise<{ runner: PipelineRunner; controller: AbortController }> {
  const generated = defineSource<Record<string, never>>({
    name: 'bench-users',
    summary: 'One event per user (bench only).',
    config: { type: 'object' },
    create: (_config, context) => ({
      async *read() {
        for (let start = 0; start < users; start += context.batchSize) {
          const batch: ClickEvent[] = [];
          for (let u = start; u < Math.min(users, start + context.batchSize); u++) {
            const late = u >= users - open;
            const time = late ? t0 + 3_600_000 + ((u - (users - open)) / open) * 300_000 : t0 + (u / (users - open)) * 600_000;
            batch.push({ kind: 'event', userId: `user-${u}`, time: Math.round(time), type: u % 7 === 0 ? 'cart' : 'view', itemId: `i${u % 5000}`, category: `c${u % 50}`, price: 10 + (u % 90) });
          }
          yield batch;
        }
        // Then no more input, until the run is stopped: the state keeps its open sessions.
        await new Promise((resolve) => context.signal?.addEventListener('abort', resolve, { once: true }));
      },
    }),
  });
  const yaml = `name: ${name}
sources: [{type: bench-users}]
stages:
  - {type: sessionizer, gap: 30m, max_open_sessions: ${users + 1}}
  - {type: session-features}
  - {type: user-features, max_users: ${users + 1}}
sinks: [{type: file, path: ${join(dir, 'out.jsonl')}, kinds: []}]
checkpoint: {dir: ${join(dir, 'checkpoints')}, interval: 1h}
`;
  const registry = await builtinRegistry();
  registry.register(generated, 'bench');
  const loaded = await loadPipeline(join(dir, 'bench.yaml'), { registry, text: yaml, env: {} });
  const controller = new AbortController();
  const runner = new PipelineRunner(loaded, {
    logger: silentLogger,
    metrics: new MetricsHub(),
    signal: controller.signal,
    checkpoints: { store: new CheckpointStore(join(dir, 'checkpoints')), intervalMs: 3_600_000 },
  });
  return { runner, controller };
}
