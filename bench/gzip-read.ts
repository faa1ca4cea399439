/**
 * Reading a gzip file through the `file` source: events per second (wall), CPU time (a loaded host's
 * wall time includes waits for a core) and the process's peak RSS, for one
 * build (run this file of two builds in turn to compare them). Each member's lines are held until its
 * CRC checks (up to 16 MiB of text), which this measures the cost of.
 *
 *   node dist/bench/gzip-read.js FILE.jsonl.gz
 */
import { performance } from 'node:perf_hooks';
import { testContext } from 'tributary/testing';
import fileSource from '../plugins/sources/file.js';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: gzip-read FILE.jsonl.gz');
const context = testContext({ batchSize: 1000 });
const source = await fileSource.create({ path, mapping: { time_format: 'epoch_ms' } }, context);
const started = performance.now();
const cpuBefore = process.cpuUsage();
let events = 0;
for await (const batch of source.read()) events += batch.length;
const ms = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
const rssMiB = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ events, ms: Math.round(ms), cpuMs: Math.round((cpu.user + cpu.system) / 1000), eventsPerSecond: Math.round((events / ms) * 1000), maxRssMiB: Math.round(rssMiB), deadLetters: context.deadLetters.length }));
