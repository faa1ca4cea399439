/**
 * What a checkpoint's bytes are: the body's serialised size by section (sources, operators,
 * counters), by stage, and by field within each stage, down to a depth, largest first.
 *
 *   node [--expose-gc] dist/bench/checkpoint-breakdown.js CHECKPOINT_FILE [depth=3] [minBytes=10000] [--models[=rounds]]
 *
 * Sizes are of each value's JSON (as the checkpoint writes it), in bytes of UTF-8; a field's size
 * leaves out its key and separators, so the children of a value add up to a little less than it.
 * Arrays are shown as one field with their length (not element by element).
 *
 * With --models (a checkpoint of bench/pipelines/soak.yaml): each model stage's state is restored
 * into its operator (configured as in soak.yaml) by the build that runs this, then, `rounds` times
 * (3 by default), snapshotted as the runtime takes a checkpoint (snapshot(), then stringifyInParts)
 * and restored into a fresh operator as at start (JSON.parse, then restore()), each timed in the
 * process's CPU time (with --expose-gc, after a full collection). The same state in this build's
 * format, so two builds compare on one file: the bytes and breakdown are of that snapshot.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { readCheckpoint } from 'tributary';
import { testContext } from 'tributary/testing';
import { stringifyInParts } from '../core/runtime/parts.js';
import { packageRoot } from '../core/paths.js';
import intentModel from '../plugins/models/intent.js';
import churnModel from '../plugins/models/churn.js';

const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const file = args[0];
if (!file) throw new Error('usage: checkpoint-breakdown CHECKPOINT_FILE [depth] [minBytes] [--models[=rounds]]');
const depth = Number(args[1] ?? 3);
const minBytes = Number(args[2] ?? 10_000);
const modelsFlag = flags.find((f) => f === '--models' || f.startsWith('--models='));
const rounds = modelsFlag === undefined ? 0 : Number(modelsFlag.split('=')[1] ?? 3);

const body = await readCheckpoint(file);
const bytesOf = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? '');
const describe = (value: unknown): string => (Array.isArray(value) ? `array[${value.length}]` : value === null ? 'null' : typeof value);

function table(value: Record<string, unknown>): void {
  const rows: { path: string; bytes: number; what: string }[] = [];
  function walk(path: string, child: unknown, level: number): void {
    const bytes = bytesOf(child);
    if (bytes < minBytes && level > 1) return;
    rows.push({ path, bytes, what: describe(child) });
    if (level >= depth || child === null || typeof child !== 'object' || Array.isArray(child)) return;
    for (const [key, grandchild] of Object.entries(child as Record<string, unknown>)) walk(`${path}.${key}`, grandchild, level + 1);
  }
  const total = bytesOf(value);
  for (const [key, child] of Object.entries(value)) walk(key, child, 1);
  console.log(`| path | bytes | share | type |\n|---|---:|---:|---|`);
  for (const row of rows) console.log(`| ${row.path} | ${row.bytes.toLocaleString('en-US')} | ${((100 * row.bytes) / total).toFixed(1)}% | ${row.what} |`);
  console.log(`| (body) | ${total.toLocaleString('en-US')} | 100% | |`);
}

if (rounds === 0) table(body as unknown as Record<string, unknown>);
else await models();

/** CPU time of the process so far (ms): unlike wall time, not stretched while other processes hold the cores. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

async function models(): Promise<void> {
  // The stage configs as soak.yaml writes them, ${VAR:-default} read as its default.
  const yamlText = readFileSync(join(packageRoot, 'bench/pipelines/soak.yaml'), 'utf8').replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
  const stages = (parse(yamlText) as { stages: { type: string }[] }).stages;
  const operators = body.operators as Record<string, unknown>;
  const plugins = { 'intent-model': intentModel, 'churn-model': churnModel } as const;
  const resnapshot: Record<string, unknown> = {};
  for (const [index, stage] of stages.entries()) {
    const plugin = plugins[stage.type as keyof typeof plugins];
    const key = `stage-${stage.type}-${index}`;
    if (plugin === undefined || operators[key] === undefined) continue;
    const { type: _type, ...config } = stage;
    const create = async (): Promise<NonNullable<Awaited<ReturnType<typeof plugin.create>>>> => {
      const operator = await plugin.create(config as never, testContext({ label: key }));
      await operator.open?.();
      return operator;
    };
    const operator = await create();
    await operator.restore!(JSON.parse(JSON.stringify(operators[key])));
    for (let round = 0; round < rounds; round++) {
      globalThis.gc?.();
      let cpu = cpuMs();
      const pieces = await stringifyInParts(await operator.snapshot!());
      const snapshotCpuMs = cpuMs() - cpu;
      const text = Buffer.concat(pieces).toString();
      const fresh = await create();
      globalThis.gc?.();
      cpu = cpuMs();
      await fresh.restore!(JSON.parse(text));
      const restoreCpuMs = cpuMs() - cpu;
      await fresh.close?.();
      console.log(JSON.stringify({ stage: key, round, bytes: Buffer.byteLength(text), snapshotCpuMs: Math.round(snapshotCpuMs), parseAndRestoreCpuMs: Math.round(restoreCpuMs) }));
      if (round === 0) resnapshot[key] = JSON.parse(text);
    }
    await operator.close?.();
  }
  table(resnapshot);
}
process.exit(0); // the models' backends keep handles open
