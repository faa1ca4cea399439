import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnTributary, tempFolder, until } from 'tributary/testing';
import { alertRules, kafkaSeries, metricsTable, ruleProblems, ruleSeries, scrapedSeries } from './alert-rules.js';

// dist/examples/ops/ -> the checkout's root, where the sources and the example files are.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// A daemon as an SRE runs it, every built-in stage that exports series, and one scrape of its /metrics,
// once the series that come with the data (the model's AUC, a checkpoint's size) are there.
test('the example alert rules, the metrics table of docs/operations.md and Prometheus naming hold against a real /metrics scrape of the daemon', { timeout: 300_000 }, async (t) => {
  const dir = tempFolder(t, 'alerts');
  const file = join(dir, 'shop.yaml');
  writeFileSync(
    file,
    `name: shop
sources: [{type: synthetic, users: 300, events: 0, rate: 2000, seed: 7}]
stages:
  - {type: sessionizer, gap: 30m}
  - {type: session-features}
  - {type: user-features, horizons: [1d]}
  - {type: intent-model, name: intent, model: {kind: logistic}}
  - {type: churn-model, name: churn, horizon: 1d, model: {kind: logistic}}
sinks: [{type: file, path: ${join(dir, 'out.jsonl')}, kinds: [prediction]}]
checkpoint: {dir: ${join(dir, 'checkpoints')}, interval: 1s}
settings: {heap_budget: 2GiB}
`,
  );
  const daemon = spawnTributary(t, ['run', file, '--http-port', '0', '--log-level', 'info'], { cwd: dir });
  let port = 0;
  await daemon.started(() => (port = Number(/"port":(\d+),[^\n]*serving \/healthz/.exec(daemon.stderr)?.[1])) > 0, 'the operations endpoint');
  let text = '';
  await until(async () => {
    text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return /^tributary_model_auc\{/m.test(text) && /^tributary_checkpoint_bytes\{/m.test(text);
  }, 'the model AUC and a checkpoint in the scrape', 120_000, 250);
  assert.equal(await daemon.stop(), 0, daemon.stderr);
  const scrape = scrapedSeries(text);
  const rules = alertRules(root);

  // Which version runs, as the convention's _info gauge: a rollout's progress, which version an alert fired under.
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  assert.match(text, new RegExp(`^tributary_build_info\\{version="${version.replaceAll('.', '\\.')}"\\} 1$`, 'm'));

  // Each rule's series and labels, as the daemon exports them.
  assert.deepEqual(ruleProblems(rules, scrape, (name) => !kafkaSeries(name)), []);
  assert.deepEqual([...ruleSeries(rules)].filter((name) => !scrape.has(name) && !kafkaSeries(name)), [], 'only a Kafka source\'s series are left to the Kafka test');

  // Each family in the scrape (less prom-client's process and Node.js ones) is in the metrics table, by its full
  // name: an SRE greps the docs for the name an alert or a dashboard shows.
  const families = [...text.matchAll(/^# TYPE (tributary_[a-z0-9_]+) (\w+)$/gm)].map((match) => ({ name: match[1]!, type: match[2]! }));
  const operations = readFileSync(join(root, 'docs/operations.md'), 'utf8');
  const documented = new Set(operations.match(/tributary_[a-z0-9_]+/g));
  const ours = families.filter(({ name }) => !/^tributary_(process|nodejs)_/.test(name));
  assert.ok(ours.length >= 50, `${ours.length} families scraped`);
  assert.deepEqual(ours.map(({ name }) => name).filter((name) => !documented.has(name)), [], 'families docs/operations.md does not name in full');

  // Each family has a row of the metrics table, whose labels column is the label names its samples carry (a
  // histogram's less `le`): an SRE writes a selector or a `sum by` from it.
  const table = metricsTable(operations);
  assert.deepEqual(ours.map(({ name }) => name).filter((name) => !table.has(name)), [], 'families the metrics table has no row for');
  const labelsOf = (name: string): string => [...(scrape.get(name) ?? scrape.get(`${name}_count`) ?? [])].filter((label) => label !== 'le').sort().join(', ');
  assert.deepEqual(
    ours.filter(({ name }) => table.has(name) && labelsOf(name) !== table.get(name)!.join(', ')).map(({ name }) => `${name}: scraped {${labelsOf(name)}}, the table says {${table.get(name)!.join(', ')}}`),
    [],
  );

  // Each alert of the file is said in docs/operations.md (what it means, what to do).
  assert.deepEqual(rules.map(({ alert }) => alert).filter((alert) => !operations.includes(`\`${alert}\``)), [], 'alerts docs/operations.md does not list');

  // Prometheus's naming: a counter ends in _total and only a counter does (prom-client's nodejs_active_*_total
  // gauges are its own); one HELP and one TYPE per family.
  assert.deepEqual(ours.filter(({ name, type }) => (type === 'counter') !== name.endsWith('_total')).map(({ name, type }) => `${name} (${type})`), []);
  for (const kind of ['HELP', 'TYPE']) {
    const names = [...text.matchAll(new RegExp(`^# ${kind} (\\S+) `, 'gm'))].map((match) => match[1]!);
    assert.deepEqual(names.filter((name, index) => names.indexOf(name) !== index), [], `families with more than one ${kind}`);
  }
});
