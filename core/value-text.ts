/**
 * A config or input value as a message quotes it: its JSON where it has one (NaN and Infinity, YAML's .nan and
 * .inf, by name: JSON would write null), cut at 60 characters. One place for every message that shows a value
 * (a config problem, a hook's result, a checkpoint's stage changed since), so they read alike.
 */
export function valueText(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // A cycle or a BigInt, from a hook's result.
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}
