import type { LevelWithSilent } from 'pino';
import { loadPipeline } from '../config/load.js';
import { parseDuration } from '../duration.js';
import { PipelineRunner, type RunStats } from '../runtime/pipeline.js';
import { createLogger } from '../runtime/telemetry.js';
import { builtinRegistry } from './registry.js';

export interface RunCommandOptions {
  file: string;
  sets: string[];
  plugins: string[];
  logLevel: LevelWithSilent;
  progress: boolean;
}

const rate = (count: number, ms: number): string => (ms > 0 ? Math.round((count / ms) * 1000).toLocaleString('en-US') : '-');

export function formatSummary(name: string, stats: RunStats): string {
  const byKind = Object.entries(stats.outByKind).map(([kind, count]) => `${kind} ${count}`).join(', ');
  const lines = [
    `pipeline ${name}: ${stats.drained ? 'drained' : 'stopped'}`,
    `  events in      ${stats.eventsIn}`,
    `  records out    ${stats.recordsOut}${byKind ? ` (${byKind})` : ''}`,
    `  dead-lettered  ${stats.deadLettered}`,
    `  filtered       ${stats.filtered}`,
    ...Object.entries(stats.filteredByReason).map(([reason, count]) => `    ${reason}: ${count}`),
    ...Object.entries(stats.sideOutputs).map(([output, count]) => `  side output ${output}: ${count}`),
    `  elapsed        ${(stats.elapsedMs / 1000).toFixed(2)} s`,
    `  events/s       ${rate(stats.eventsIn, stats.elapsedMs)}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** `tributary run FILE`: 0 when drained or stopped cleanly, 2 on invalid config (thrown), 1 on failure (thrown). */
export async function runPipelineCommand(options: RunCommandOptions): Promise<number> {
  const logger = createLogger({ level: options.logLevel, pretty: process.stderr.isTTY === true });
  const registry = await builtinRegistry(options.plugins);
  const loaded = await loadPipeline(options.file, { registry, sets: options.sets });
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.error({ signal }, 'second signal: exiting without draining');
      process.exit(1);
    }
    logger.info({ signal }, 'stopping: draining in-flight records');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const runner = new PipelineRunner(loaded, { logger, signal: controller.signal });
  let progressTimer: NodeJS.Timeout | undefined;
  if (options.progress) {
    const interval = parseDuration(loaded.document.settings.progress_interval);
    const began = Date.now();
    progressTimer = setInterval(() => {
      const s = runner.stats;
      const elapsed = Date.now() - began;
      const wm = Number.isFinite(s.watermark) ? new Date(s.watermark).toISOString().replace('.000Z', 'Z') : '-';
      process.stderr.write(
        `\r\x1b[2K${runner.name}: in ${s.eventsIn.toLocaleString('en-US')}  out ${s.recordsOut.toLocaleString('en-US')}  dead ${s.deadLettered}  ${rate(s.eventsIn, elapsed)} ev/s  watermark ${wm}`,
      );
    }, interval);
    progressTimer.unref();
  }
  try {
    const stats = await runner.run();
    if (progressTimer) process.stderr.write('\r\x1b[2K');
    process.stderr.write(formatSummary(runner.name, stats));
    return 0;
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
