/**
 * The JSON encoding of records, shared by every sink that writes JSON (file, stdout, Kafka), so a
 * record reads the same wherever it lands.
 */
import type { ClickEvent, FeatureVector } from './events.js';

const plainString = /^[^"\\\u0000-\u001f\u2028\u2029\ud800-\udfff]*$/;

function quote(value: string): string {
  return plainString.test(value) ? `"${value}"` : JSON.stringify(value);
}

const canonicalFields = ['kind', 'userId', 'time', 'type', 'sessionId', 'itemId', 'category', 'price'];

/**
 * A canonical event with only its canonical fields, written without JSON.stringify's generic object
 * walk: half the cost, and sinks run it once per record. Anything else (attributes, features, fields
 * other operators added) takes the generic path, so nothing is ever dropped.
 */
function fastEventJson(event: ClickEvent): string | undefined {
  let fields = 4;
  if (event.sessionId !== undefined) fields++;
  if (event.itemId !== undefined) fields++;
  if (event.category !== undefined) fields++;
  if (event.price !== undefined) fields++;
  if (typeof event.userId !== 'string' || typeof event.type !== 'string' || !Number.isFinite(event.time)) return undefined;
  if (event.price !== undefined && !Number.isFinite(event.price)) return undefined;
  const keys = Object.keys(event);
  if (keys.length !== fields) return undefined;
  for (let i = 0; i < keys.length; i++) if (!canonicalFields.includes(keys[i]!)) return undefined;
  let json = `{"kind":"event","userId":${quote(event.userId)},"time":${event.time},"type":${quote(event.type)}`;
  if (event.sessionId !== undefined) json += `,"sessionId":${quote(event.sessionId)}`;
  if (event.itemId !== undefined) json += `,"itemId":${quote(event.itemId)}`;
  if (event.category !== undefined) json += `,"category":${quote(event.category)}`;
  if (event.price !== undefined) json += `,"price":${event.price}`;
  return `${json}}`;
}

/** JSON for one record. A feature vector becomes `{name: value}` so readers never need the schema. */
export function recordToJson(record: object): string {
  if ((record as { kind?: unknown }).kind === 'event') {
    const fast = fastEventJson(record as ClickEvent);
    if (fast !== undefined) return fast;
  }
  const features = (record as { features?: FeatureVector }).features;
  if (features === undefined || !(features.values instanceof Float32Array)) return JSON.stringify(record);
  const named: Record<string, number> = {};
  for (let i = 0; i < features.names.length; i++) named[features.names[i]!] = features.values[i]!;
  return JSON.stringify({ ...record, features: named });
}
