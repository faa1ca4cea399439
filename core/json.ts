/**
 * The JSON encoding of records, shared by every sink that writes JSON (file, stdout, Kafka), so a
 * record reads the same wherever it lands.
 */
import type { ClickEvent, FeatureVector } from './events.js';

const plainString = /^[^"\\\u0000-\u001f\u2028\u2029\ud800-\udfff]*$/;

function quote(value: string): string {
  return plainString.test(value) ? `"${value}"` : JSON.stringify(value);
}

/** True when every own enumerable string key is a canonical event field (for-in skips the symbol-keyed origin). */
function onlyCanonicalFields(event: object): boolean {
  for (const key in event) {
    switch (key) {
      case 'kind':
      case 'userId':
      case 'time':
      case 'type':
      case 'sessionId':
      case 'itemId':
      case 'category':
      case 'price':
        break;
      default:
        return false;
    }
  }
  return true;
}

const optionalString = (value: unknown): boolean => value === undefined || typeof value === 'string';

/**
 * A canonical event with only its canonical fields, written without JSON.stringify's generic object
 * walk: sinks run this once per record. Anything else (attributes, features, fields other
 * operators added, values of unexpected types) takes the generic path, so nothing is ever dropped
 * or written differently.
 */
function fastEventJson(event: ClickEvent): string | undefined {
  if (typeof event.userId !== 'string' || typeof event.type !== 'string' || !Number.isFinite(event.time)) return undefined;
  if (!optionalString(event.sessionId) || !optionalString(event.itemId) || !optionalString(event.category)) return undefined;
  if (event.price !== undefined && !Number.isFinite(event.price)) return undefined;
  if (!onlyCanonicalFields(event)) return undefined;
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
