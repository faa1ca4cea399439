/**
 * Microbench of the mapping's time parsing, with and without `time_zone`: nanoseconds per value for the
 * time parser alone and per record for the whole mapper, over 200,000 times of 2024 (in time order, and
 * shuffled: each record then most likely in another local day than the one before).
 *
 *   node dist/bench/time-zone.js [path of a compiled core/mapping.js] [--rounds=7]
 *
 * The path lets one build (an earlier commit's dist, copied away) be measured against another in the
 * same run of the machine; a build without `time_zone` measures its UTC cases alone. Each case runs in
 * a process of its own (its call sites see one parser, as a source's mapper does). Figures: per case,
 * the best of 5 passes in each round, the median over rounds (cases alternate within each round).
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { seededShuffle } from './data.js';

type Mapping = typeof import('../core/mapping.js');

const args = process.argv.slice(2);
const modulePath = args.find((arg) => !arg.startsWith('--'));
const rounds = Number(args.find((arg) => arg.startsWith('--rounds='))?.slice('--rounds='.length) ?? 7);
const mapping = (await import(modulePath === undefined ? '../core/mapping.js' : pathToFileURL(modulePath).href)) as Mapping;
// A build that reads time_zone refuses a zone that does not exist; an earlier one ignores the argument.
const zoned = ((): boolean => {
  try {
    mapping.createTimeParser('iso8601', 'No/Such_Zone');
    return false;
  } catch {
    return true;
  }
})();

const count = 200_000;
const start = Date.UTC(2024, 0, 1);
const step = Math.floor((366 * 86_400_000) / count);
const pad = (value: number): string => String(value).padStart(2, '0');
const local = (time: number): string => {
  const date = new Date(time);
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
};
const times = Array.from({ length: count }, (_, i) => start + i * step);
const shuffled = seededShuffle(times);
const texts = {
  isoZ: times.map((time) => new Date(time).toISOString().slice(0, 19) + 'Z'),
  local: times.map(local),
  localShuffled: shuffled.map(local),
};

interface Case {
  name: string;
  format: string;
  zone?: string;
  values: string[];
}
const cases: Case[] = [
  { name: 'iso8601 ...Z', format: 'iso8601', values: texts.isoZ },
  { name: 'iso8601 no offset', format: 'iso8601', values: texts.local },
  { name: 'pattern', format: 'yyyy-MM-dd HH:mm:ss', values: texts.local },
  { name: 'pattern, shuffled', format: 'yyyy-MM-dd HH:mm:ss', values: texts.localShuffled },
];
if (zoned) {
  for (const zone of ['Europe/Berlin']) {
    cases.push(
      { name: `iso8601 ...Z, ${zone}`, format: 'iso8601', zone, values: texts.isoZ },
      { name: `iso8601 no offset, ${zone}`, format: 'iso8601', zone, values: texts.local },
      { name: `pattern, ${zone}`, format: 'yyyy-MM-dd HH:mm:ss', zone, values: texts.local },
      { name: `pattern, ${zone}, shuffled`, format: 'yyyy-MM-dd HH:mm:ss', zone, values: texts.localShuffled },
    );
  }
}

let sink = 0;
function parserPass(parse: (value: unknown) => number, values: string[]): number {
  const begin = process.hrtime.bigint();
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += parse(values[i]);
  const ns = Number(process.hrtime.bigint() - begin) / values.length;
  sink += sum;
  return ns;
}
function mapperPass(map: (raw: unknown) => unknown, records: object[]): number {
  const begin = process.hrtime.bigint();
  let mapped = 0;
  for (let i = 0; i < records.length; i++) if ((map(records[i]) as { time?: number }).time !== undefined) mapped++;
  const ns = Number(process.hrtime.bigint() - begin) / records.length;
  sink += mapped;
  return ns;
}

const only = args.find((arg) => arg.startsWith('--case='));
if (only !== undefined) {
  // One case in this process: its call sites see one parser, as a source's mapper does.
  const testCase = cases[Number(only.slice('--case='.length))]!;
  const parse = mapping.createTimeParser(testCase.format, testCase.zone);
  const map = mapping.createEventMapper({ time_format: testCase.format, ...(testCase.zone === undefined ? {} : { time_zone: testCase.zone }) });
  const records = testCase.values.map((time, i) => ({ user_id: `u${i % 1000}`, time, type: 'view' }));
  const parser = Math.min(...Array.from({ length: 5 }, () => parserPass(parse, testCase.values)));
  const mapper = Math.min(...Array.from({ length: 5 }, () => mapperPass(map, records)));
  process.stdout.write(JSON.stringify({ parser, mapper, sink: sink % 997 }));
} else {
  const results = cases.map(() => ({ parser: [] as number[], mapper: [] as number[] }));
  const script = fileURLToPath(import.meta.url);
  for (let round = 0; round < rounds; round++) {
    cases.forEach((_, index) => {
      const output = execFileSync(process.execPath, [script, ...(modulePath === undefined ? [] : [modulePath]), `--case=${index}`], { encoding: 'utf8' });
      const { parser, mapper } = JSON.parse(output) as { parser: number; mapper: number };
      results[index]!.parser.push(parser);
      results[index]!.mapper.push(mapper);
    });
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(`${modulePath ?? 'dist/core/mapping.js'}: ${count} values, ${rounds} rounds, node ${process.version}, load ${loadavg()[0]!.toFixed(1)}`);
  cases.forEach(({ name }, index) => {
    const { parser, mapper } = results[index]!;
    console.log(`${name.padEnd(38)} parser ${median(parser).toFixed(1).padStart(6)} ns/value   mapper ${median(mapper).toFixed(1).padStart(6)} ns/record`);
  });
}
