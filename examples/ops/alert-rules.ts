/**
 * The example alerting rules (examples/ops/prometheus-alerts.yaml) checked against a real /metrics scrape:
 * a rule that names a series the daemon does not export, or a label its series lack, never fires, and
 * nothing says so. A test helper (examples/ops is not part of the package's code).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export interface AlertRule {
  alert: string;
  expr: string;
  annotations: Record<string, string>;
}

export function alertRules(root: string): AlertRule[] {
  const file = parse(readFileSync(join(root, 'examples/ops/prometheus-alerts.yaml'), 'utf8')) as { groups: { rules: { alert: string; expr: string; annotations?: Record<string, string> }[] }[] };
  return file.groups.flatMap((group) => group.rules.map((rule) => ({ alert: rule.alert, expr: rule.expr, annotations: rule.annotations ?? {} })));
}

/** A scrape's series (as sampled: a histogram's `_bucket`, `_sum`, `_count`), each with the label names its samples carry. */
export function scrapedSeries(text: string): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s/.exec(line);
    if (!sample) continue;
    const labels = series.get(sample[1]!) ?? new Set<string>();
    for (const label of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(label[1]!);
    series.set(sample[1]!, labels);
  }
  return series;
}

/** The `tributary_` series an expression selects, each with the label names its matchers name (`{backend="cpu"}`). */
function selectors(expr: string): { name: string; matched: string[] }[] {
  return [...expr.matchAll(/\b(tributary_[a-z0-9_]+)\s*(?:\{([^}]*)\})?/g)].map((match) => ({
    name: match[1]!,
    matched: [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((label) => label[1]!),
  }));
}

/** The label names an expression groups or matches by: `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`, `group_right (...)`. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)].flatMap((match) =>
    match[1]!.split(',').map((label) => label.trim()).filter((label) => label !== ''),
  );
}

/**
 * What in `rules` the scrape contradicts: a series it has no sample of, a label (matched, grouped by, or
 * read by an annotation's `$labels.X`) a series lacks. `scope` picks the series the scrape is to answer
 * for (a file pipeline's scrape has no Kafka source's series); the others are left to another scrape.
 */
export function ruleProblems(rules: readonly AlertRule[], scrape: Map<string, Set<string>>, scope: (name: string) => boolean): string[] {
  const problems: string[] = [];
  for (const rule of rules) {
    const selected = selectors(rule.expr).filter(({ name }) => scope(name));
    const read = [...Object.values(rule.annotations).join(' ').matchAll(/\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)/g)].map((match) => match[1]!);
    // An aggregation keeps only the labels it groups by: an annotation reading another one reads ''.
    const kept = [...rule.expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((match) => match[1]!.split(',').map((label) => label.trim()));
    if (kept.length > 0) for (const label of read) if (!kept.includes(label)) problems.push(`${rule.alert}: its annotations read $labels.${label}, which its aggregation (by ${kept.join(', ')}) drops`);
    for (const { name, matched } of selected) {
      const labels = scrape.get(name);
      if (!labels) {
        problems.push(`${rule.alert}: ${name} is not in the scrape`);
        continue;
      }
      for (const label of new Set([...matched, ...groupingLabels(rule.expr), ...read])) {
        if (!labels.has(label)) problems.push(`${rule.alert}: ${name} has no label '${label}' (its labels: ${[...labels].join(', ') || 'none'})`);
      }
    }
  }
  return problems;
}

/** The `tributary_` series every rule selects (to tell which a scrape left unchecked). */
export function ruleSeries(rules: readonly AlertRule[]): Set<string> {
  return new Set(rules.flatMap((rule) => selectors(rule.expr).map(({ name }) => name)));
}

/** A Kafka source's series: a file pipeline exports none; integration-tests/kafka-alerts.test.ts checks them against a Kafka daemon's scrape. */
export const kafkaSeries = (name: string): boolean => name.startsWith('tributary_kafka_');

/**
 * docs/operations.md's metrics table: each family a row names in full (not `tributary_process_*`), with the
 * label names of its labels column.
 */
export function metricsTable(markdown: string): Map<string, string[]> {
  const table = new Map<string, string[]>();
  const from = markdown.indexOf('\n| series | labels | meaning |');
  if (from < 0) return table;
  for (const row of markdown.slice(from + 1).split('\n').slice(2)) {
    if (!row.startsWith('|')) break;
    const [, names = '', labels = ''] = row.split(/(?<!\\)\|/);
    const labelNames = labels.split(',').map((label) => label.trim()).filter((label) => label !== '').sort();
    for (const name of names.matchAll(/`(tributary_[a-z0-9_]+)`/g)) table.set(name[1]!, labelNames);
  }
  return table;
}
