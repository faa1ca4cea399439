/**
 * A config or input value as a message quotes it: its JSON where it has one (NaN and Infinity, YAML's .nan and
 * .inf, by name: JSON would write null), cut at 60 characters. One place for every message that shows a value
 * (a config problem, a hook's result, a checkpoint's stage changed since, a dead letter's reason), so they read alike.
 * `ellipsis` ends a cut text: a dead letter's reason has always ended one with `...`, which users may filter on.
 */
export function valueText(value: unknown, ellipsis = '…'): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // A cycle or a BigInt: a hook's result, a plugin source's record.
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 60 - ellipsis.length)}${ellipsis}` : text;
}
