#!/usr/bin/env node
// Splits canonical events (a file sink's output) into what a shop has from two systems:
//   clicks.jsonl  the browser's clickstream (user_id, event_time, event_type, product_id, price); its
//                 purchase events kept, with their order_id, as a checkout page sends them (ad blockers lose some)
//   orders.jsonl  the order service's orders (order_id, customer_id, created_at, total, currency, status),
//                 each written 5 s to 3 min after the purchase click (after payment), in created_at order
// Usage: node examples/orders/split-orders.mjs EVENTS.jsonl OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [eventsFile, outDir] = process.argv.slice(2);
if (!eventsFile || !outDir) {
  console.error('usage: node examples/orders/split-orders.mjs EVENTS.jsonl OUT_DIR');
  process.exit(2);
}
const events = readFileSync(eventsFile, 'utf8').split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
// Seeded: the same events give the same files.
let seed = 11;
const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const clicks = [];
const orders = [];
for (const event of events) {
  const click = { user_id: event.userId, event_time: new Date(event.time).toISOString(), event_type: event.type, product_id: event.itemId, price: event.price };
  if (event.type !== 'purchase') {
    clicks.push(click);
    continue;
  }
  const orderId = `o-${String(orders.length + 1).padStart(6, '0')}`;
  const paidAfterMs = 5_000 + Math.floor(random() * 175_000);
  orders.push({ order_id: orderId, customer_id: event.userId, created_at: new Date(event.time + paidAfterMs).toISOString(), total: event.price, currency: 'EUR', status: 'paid' });
  clicks.push({ ...click, order_id: orderId });
}
orders.sort((a, b) => a.created_at.localeCompare(b.created_at));
const lines = (rows) => rows.map((row) => `${JSON.stringify(row)}\n`).join('');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'clicks.jsonl'), lines(clicks));
writeFileSync(join(outDir, 'orders.jsonl'), lines(orders));
console.log(`${join(outDir, 'clicks.jsonl')}: ${clicks.length} clicks; ${join(outDir, 'orders.jsonl')}: ${orders.length} orders`);
