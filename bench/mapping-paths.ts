/**
 * Microbench of the mapper by the kind of field names a mapping gives: plain names, dotted paths into
 * nested objects, and paths into lists (GA4's `event_params[key="ga_session_id"].value.int_value`,
 * `items[0].price`); process CPU nanoseconds per record over 200,000 records, epoch_ms times.
 *
 *   node dist/bench/mapping-paths.js [path of a compiled core/mapping.js] [--rounds=7]
 *
 * As bench/time-zone.ts: the path lets an earlier build (its dist copied away) be measured against this
 * one in the same run of the machine; a build that reads no list steps measures the first two cases
 * alone. Each case runs in a process of its own (its call sites see one mapping, as a source's mapper
 * does); per case the best of 5 passes in each round, the median over rounds, cases alternating within
 * each round.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

type Mapping = typeof import('../core/mapping.js');

const args = process.argv.slice(2);
const modulePath = args.find((arg) => !arg.startsWith('--'));
const rounds = Number(args.find((arg) => arg.startsWith('--rounds='))?.slice('--rounds='.length) ?? 7);
const mapping = (await import(modulePath === undefined ? '../core/mapping.js' : pathToFileURL(modulePath).href)) as Mapping;

const count = 200_000;
const start = Date.UTC(2024, 0, 1);
interface Case {
  name: string;
  config: Parameters<Mapping['createEventMapper']>[0];
  record: (i: number) => object;
}
const cases: Case[] = [
  {
    name: 'plain names',
    config: { time_format: 'epoch_ms' },
    record: (i) => ({ user_id: `u${i % 1000}`, time: start + i * 1000, type: 'view', session_id: `s${i % 5000}`, item_id: `i${i % 300}`, category: 'shoes', price: 12.5 }),
  },
  {
    name: 'dotted paths',
    config: { fields: { user_id: 'user.id', type: 'event.type', session_id: 'context.session', item_id: 'event.product.sku', category: 'event.product.category', price: 'event.product.price' }, time_format: 'epoch_ms' },
    record: (i) => ({ user: { id: `u${i % 1000}` }, time: start + i * 1000, context: { session: `s${i % 5000}` }, event: { type: 'view', product: { sku: `i${i % 300}`, category: 'shoes', price: 12.5 } } }),
  },
  {
    name: 'GA4 paths into lists',
    config: {
      fields: { user_id: 'user_pseudo_id', time: 'event_timestamp', type: 'event_name', session_id: 'event_params[key="ga_session_id"].value.int_value', item_id: 'items[0].item_id', category: 'items[0].item_category', price: 'items[0].price' },
      time_format: 'epoch_ms',
    },
    record: (i) => ({
      user_pseudo_id: `u${i % 1000}`,
      event_timestamp: String(start + i * 1000),
      event_name: 'view_item',
      event_params: [
        { key: 'page_location', value: { string_value: 'https://shop.example.com/p/1' } },
        { key: 'page_title', value: { string_value: 'Shoe' } },
        { key: 'ga_session_id', value: { int_value: String(1_700_000_000 + (i % 5000)) } },
        { key: 'engagement_time_msec', value: { int_value: '1200' } },
      ],
      items: [{ item_id: `i${i % 300}`, item_category: 'shoes', price: 12.5, quantity: '1' }],
    }),
  },
];
// A build that reads no list steps maps the GA4 case without a session id: it is left out there.
const listSteps = (() => {
  const ga4 = cases[2]!;
  const event = mapping.createEventMapper(ga4.config)(ga4.record(0)) as { sessionId?: string };
  return event.sessionId !== undefined;
})();
const measured = listSteps ? cases : cases.slice(0, 2);

let sink = 0;
/** Process CPU time per record (user and system), not wall time: a shared host's load moves wall time 2x. */
function mapperPass(map: (raw: unknown) => unknown, records: object[]): number {
  const begin = process.cpuUsage();
  let mapped = 0;
  for (let i = 0; i < records.length; i++) if ((map(records[i]) as { itemId?: string }).itemId !== undefined) mapped++;
  const used = process.cpuUsage(begin);
  const ns = ((used.user + used.system) * 1000) / records.length;
  if (mapped !== records.length) throw new Error(`only ${mapped} of ${records.length} records mapped with an item`);
  sink += mapped;
  return ns;
}

const only = args.find((arg) => arg.startsWith('--case='));
if (only !== undefined) {
  const testCase = measured[Number(only.slice('--case='.length))]!;
  const map = mapping.createEventMapper(testCase.config);
  const records = Array.from({ length: count }, (_, i) => testCase.record(i));
  const mapper = Math.min(...Array.from({ length: 5 }, () => mapperPass(map, records)));
  process.stdout.write(JSON.stringify({ mapper, sink: sink % 997 }));
} else {
  const results = measured.map(() => [] as number[]);
  const script = fileURLToPath(import.meta.url);
  for (let round = 0; round < rounds; round++) {
    measured.forEach((_, index) => {
      const output = execFileSync(process.execPath, [script, ...(modulePath === undefined ? [] : [modulePath]), `--case=${index}`], { encoding: 'utf8' });
      results[index]!.push((JSON.parse(output) as { mapper: number }).mapper);
    });
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(`${modulePath ?? 'dist/core/mapping.js'}: ${count} records, ${rounds} rounds, node ${process.version}, load ${loadavg()[0]!.toFixed(1)}`);
  measured.forEach(({ name }, index) => {
    const values = results[index]!;
    console.log(`${name.padEnd(24)} mapper ${median(values).toFixed(1).padStart(6)} ns/record (${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)})`);
  });
}
