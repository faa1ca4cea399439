import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { alertRules } from './alert-rules.js';

// dist/examples/ops/ -> the checkout's root, where the sources and the example files are.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The TypeScript sources (not tests) under a folder of the checkout. */
function sourcesUnder(folder: string): string[] {
  return readdirSync(join(root, folder), { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts'))
    .map((path) => join(root, folder, path));
}

/** The series names core and the built-in plugins register (Metrics.counter/gauge/gaugeFamily/histogram, the runtime's observe), with the `tributary_` prefix. */
function registeredSeries(): Set<string> {
  const names = new Set<string>();
  for (const file of [...sourcesUnder('core'), ...sourcesUnder('plugins')]) {
    for (const match of readFileSync(file, 'utf8').matchAll(/\.(counter|gauge|gaugeFamily|histogram|observe)\(\s*'([a-z0-9_]+)'/g)) {
      const [, kind, name] = match;
      names.add(`tributary_${name}`);
      // A histogram is scraped as its _bucket, _sum and _count series.
      if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`tributary_${name}${suffix}`);
    }
  }
  return names;
}

/**
 * The series a file names. Not prom-client's default metrics (`tributary_process_*`, `tributary_nodejs_*`),
 * which no source of ours registers, nor a name cut short with a wildcard or a trailing `_` (`tributary_process_*`).
 */
const usedIn = (relativePath: string): string[] =>
  [...new Set(readFileSync(join(root, relativePath), 'utf8').match(/tributary_[a-z0-9_]+/g) ?? [])].filter((name) => !/^tributary_(process|nodejs)_|_$/.test(name)).sort();

// A metric renamed or removed leaves a dashboard panel empty and an alert that never fires, silently;
// and the docs that name it send an operator after a series that is not there.
// (With how many series each names at least: a pattern that stopped matching would pass with none.)
const namingFiles = { 'examples/ops/grafana-dashboard.json': 6, 'examples/ops/prometheus-alerts.yaml': 6, 'docs/operations.md': 20, 'docs/operators.md': 1, 'README.md': 3 };
for (const [file, least] of Object.entries(namingFiles)) {
  test(`every series ${file} names is one Tributary exports`, () => {
    const registered = registeredSeries();
    const used = usedIn(file);
    assert.ok(used.length >= least, `${file} names ${used.length} series, expected at least ${least}`);
    assert.deepEqual(
      used.filter((name) => !registered.has(name)),
      [],
      `series ${file} names that nothing registers (registered: ${[...registered].sort().join(', ')})`,
    );
  });
}

/** The unit's settings, `Key=value` per line (the last one where a key repeats, as systemd reads most). */
function unitSettings(): Map<string, string> {
  const settings = new Map<string, string>();
  for (const line of readFileSync(join(root, 'examples/ops/tributary.service'), 'utf8').split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) settings.set(match[1]!, match[2]!);
  }
  return settings;
}

// What docs/operations.md says of the unit (Graceful shutdown; exit codes; logrotate's reload), checked
// against the unit itself, so a change to one side shows up here.
test('the systemd unit stops, restarts, reloads and writes as docs/operations.md says', () => {
  const unit = unitSettings();
  const schema = JSON.parse(readFileSync(join(root, 'schemas/pipeline.schema.json'), 'utf8')) as { properties: { settings: { properties: { shutdown_timeout: { default: string } } } } };
  const shutdownTimeout = schema.properties.settings.properties.shutdown_timeout.default;
  assert.equal(shutdownTimeout, '30s');
  assert.equal(unit.get('KillSignal'), 'SIGTERM', 'SIGTERM drains and writes the final checkpoint');
  assert.ok(Number(unit.get('TimeoutStopSec')) > 30, `TimeoutStopSec=${unit.get('TimeoutStopSec')} leaves the drain its shutdown_timeout (${shutdownTimeout}) and node's teardown`);
  assert.equal(unit.get('Restart'), 'on-failure', 'exit 1 (restarts in the process spent) is restarted');
  assert.equal(unit.get('RestartPreventExitStatus'), '2', 'exit 2 (a person must act) is not');
  assert.match(unit.get('ExecReload') ?? '', /kill -HUP \$MAINPID/, 'systemctl reload reopens the file outputs (logrotate)');
  assert.match(unit.get('ExecStart') ?? '', /tributary run /, 'the binary itself, not npx or npm run, which do not pass SIGTERM on');
  // Checkpoints, models, outputs and dead letters hold user ids and raw events: not for every user of the host.
  assert.ok((Number.parseInt(unit.get('UMask') ?? '0', 8) & 0o007) === 0o007, `UMask=${unit.get('UMask')} takes every right of others (docs/operations.md, Security)`);
  const writable = (unit.get('ReadWritePaths') ?? '').split(/\s+/);
  assert.ok(writable.includes(unit.get('WorkingDirectory')!), 'the default dead-letter files are written in WorkingDirectory');
  const stateDir = /\$\{STATE_DIR:-([^}]+)\}/.exec(readFileSync(join(root, 'examples/pipelines/kafka-intent-scale-out.yaml'), 'utf8'))?.[1];
  assert.ok(stateDir && writable.some((path) => stateDir === path || stateDir.startsWith(`${path}/`)), `the scale-out example's default STATE_DIR (${stateDir}) is writable under ProtectSystem=strict`);
});

interface DashboardPanel {
  title: string;
  fieldConfig?: { defaults?: { unit?: string }; overrides?: { matcher: { id: string; options: string }; properties: { id: string; value: unknown }[] }[] };
  targets?: { expr: string; refId: string; legendFormat?: string }[];
}

/** The unit a panel shows each target's series in: its override for the target's refId, else the panel's. */
function unitOf(panel: DashboardPanel, refId: string): string | undefined {
  const override = panel.fieldConfig?.overrides?.find(({ matcher }) => matcher.id === 'byFrameRefID' && matcher.options === refId);
  const unit = override?.properties.find(({ id }) => id === 'unit')?.value;
  return typeof unit === 'string' ? unit : panel.fieldConfig?.defaults?.unit;
}

// Prometheus names say their unit: a series plotted on a seconds or bytes axis must be one of seconds or
// bytes, or have its own unit (an override): the heap panel drew the heap-pause rate as bytes.
test('the example dashboard plots each series in its own unit (seconds on an s axis, bytes on a bytes axis)', () => {
  const dashboard = JSON.parse(readFileSync(join(root, 'examples/ops/grafana-dashboard.json'), 'utf8')) as { panels: DashboardPanel[] };
  const suffix: Record<string, RegExp> = { s: /_seconds(_bucket|_sum|_count)?$/, bytes: /_bytes$/ };
  const wrong: string[] = [];
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      const unit = unitOf(panel, target.refId);
      const expected = unit === undefined ? undefined : suffix[unit];
      if (!expected) continue;
      for (const name of target.expr.match(/tributary_[a-z0-9_]+/g) ?? []) if (!expected.test(name)) wrong.push(`${panel.title}: ${name} shown in ${unit}`);
    }
  }
  assert.deepEqual(wrong, []);
});

// A sink stalled past its pipeline's sink_stall_timeout (a minute by default) makes /readyz 503 and raises tributary_sink_stalled_seconds; TributaryPipelineNotReady
// takes 10 minutes and does not say which stage. The example alert and dashboard name the stage sooner.
test('a stalled sink has its own example alert (naming the stage, pointing at its runbook section) and a per-stage dashboard panel', () => {
  const rules = alertRules(root);
  const stalled = rules.filter(({ expr }) => /\btributary_sink_stalled_seconds\b/.test(expr));
  assert.deepEqual(stalled.map(({ alert }) => alert), ['TributarySinkStalled']);
  const [rule] = stalled;
  assert.match(rule!.expr, /^tributary_sink_stalled_seconds > 0$/);
  assert.match(rule!.annotations['summary'] ?? '', /\{\{ \$labels\.stage \}\}/);
  assert.match(rule!.annotations['runbook'] ?? '', /^docs\/operations\.md#a-stalled-sink\b/);
  const dashboard = JSON.parse(readFileSync(join(root, 'examples/ops/grafana-dashboard.json'), 'utf8')) as { panels: DashboardPanel[] };
  const panels = dashboard.panels.filter(({ targets }) => targets?.some(({ expr }) => expr.includes('tributary_sink_stalled_seconds')));
  assert.equal(panels.length, 1, 'one panel plots the stalled sinks');
  assert.ok(panels[0]!.targets!.some(({ legendFormat }) => legendFormat?.includes('{{stage}}')), 'its legend names the stage');
});

// An alert's runbook is a section of docs/operations.md an on-call engineer opens: each section is linked from
// the table of contents by its GitHub anchor (core/cli/docs.test.ts checks those), so a renamed one shows here.
test("each example alert's runbook points at a section of docs/operations.md", () => {
  const operations = readFileSync(join(root, 'docs/operations.md'), 'utf8');
  const runbooks = alertRules(root).flatMap(({ alert, annotations }) => (annotations['runbook'] === undefined ? [] : [{ alert, runbook: annotations['runbook'] }]));
  assert.ok(runbooks.length >= 1);
  assert.deepEqual(
    runbooks.filter(({ runbook }) => {
      const anchor = /^docs\/operations\.md#([a-z0-9-]+)/.exec(runbook)?.[1];
      return anchor === undefined || !operations.includes(`](#${anchor})`);
    }).map(({ alert, runbook }) => `${alert}: ${runbook}`),
    [],
  );
});

// Trying a challenger model (docs/operations.md): the live model and the challenger are compared over days on the
// windowed AUC and log loss and on the calibration error, each model its own line (the `model` label).
test('the example dashboard plots each model\'s windowed AUC, windowed log loss and calibration error, a line per model', () => {
  const dashboard = JSON.parse(readFileSync(join(root, 'examples/ops/grafana-dashboard.json'), 'utf8')) as { panels: DashboardPanel[] };
  for (const series of ['tributary_model_auc', 'tributary_model_logloss_window', 'tributary_model_calibration_error']) {
    const targets = dashboard.panels.flatMap(({ targets }) => targets ?? []).filter(({ expr }) => new RegExp(`\\b${series}\\{`).test(expr));
    assert.ok(targets.length > 0, `no panel plots ${series}`);
    for (const target of targets) assert.match(target.legendFormat ?? '', /\{\{model\}\}/, `${series}: ${target.legendFormat}`);
  }
});
