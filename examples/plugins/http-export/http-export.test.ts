import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { originOf, type ClickEvent } from 'tributary';
import { runYaml, specProblems, testContext } from 'tributary/testing';
import { httpExport, type HttpExportConfig } from './index.js';

/** The exports the tests fetch, by path. */
const exports: Record<string, string> = {
  '/events.jsonl': [
    '{"user_id":"u1","time":"2024-05-01T10:00:00Z","type":"view","item_id":"i1"}',
    '{"user_id":"u2","time":"2024-05-01T10:00:01Z","type":"view"', // cut short
    '{"user_id":"u3","time":"2024-05-01T10:00:02Z","type":"purchase","price":12.5}',
    '',
  ].join('\n'),
  '/events.csv': ['customer,time,type,item_id', 'u1,2024-05-01T10:00:00Z,view,"tv, 55"""', 'u2,2024-05-01T10:00:01Z,view', 'u3,2024-05-01T10:00:02Z,cart,"two', 'lines"', ''].join('\r\n'),
};

const server = createServer((request, response) => {
  const body = exports[request.url ?? ''];
  if (body === undefined) response.writeHead(404).end('not found');
  else response.writeHead(200, { 'content-type': 'text/plain' }).end(body);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
after(() => {
  server.closeAllConnections();
  server.close();
});

/** Reads the source to its end: its events, and where it stands after them. */
async function readAll(config: HttpExportConfig, context = testContext(), position?: Record<string, unknown>): Promise<{ events: ClickEvent[]; position: Record<string, unknown> }> {
  const source = await httpExport.create(config, context);
  if (position) source.seek?.(position);
  const events: ClickEvent[] = [];
  for await (const batch of source.read()) events.push(...batch);
  return { events, position: source.position?.() ?? {} };
}

test('the spec is complete: every field described, the examples valid', () => {
  assert.deepEqual(specProblems(httpExport), []);
});

test('in a pipeline: JSON lines become events, a malformed line a dead letter with the URL and its line', async () => {
  const url = `${base}/events.jsonl`;
  const run = await runYaml(`sources: [{type: http-export, url: '${url}'}]\nsinks: [{type: memory}]\n`, { plugins: [httpExport], builtins: false });
  assert.deepEqual(
    run.outputs[0]!.map((event) => [event.userId, event.type]),
    [['u1', 'view'], ['u3', 'purchase']],
  );
  assert.equal(run.deadLetters.length, 1);
  const [dead] = run.deadLetters;
  assert.match(String(dead!.reason), /^malformed JSON: /);
  assert.equal(dead!.raw, '{"user_id":"u2","time":"2024-05-01T10:00:01Z","type":"view"');
  assert.deepEqual([dead!.source, dead!.file, dead!.line], ['source-http-export-0', url, 2]);
});

test('CSV: quoted fields, a renamed column, a short row dead-lettered; a resumed read passes over what was read', async () => {
  const config: HttpExportConfig = { url: `${base}/events.csv`, format: 'csv', mapping: { fields: { user_id: 'customer' } } };
  const context = testContext();
  const { events, position } = await readAll(config, context);
  assert.deepEqual(
    events.map((event) => [event.userId, event.itemId, originOf(event)?.line]),
    [['u1', 'tv, 55"', 2], ['u3', 'two\r\nlines', 4]],
  );
  assert.deepEqual(
    context.deadLetters.map((letter) => [letter.reason, letter.origin?.line]),
    [['CSV row has 3 fields, expected 4', 3]],
  );
  assert.deepEqual(position, { line: 5 }, 'every line read, the rejected one and the quoted line end included');

  const resumed = testContext();
  assert.deepEqual((await readAll(config, resumed, position)).events, [], 'resumed at its end: nothing again');
  assert.deepEqual(resumed.deadLetters, [], 'and no dead letter again');
  const fromLine2 = await readAll(config, testContext(), { line: 2 });
  assert.deepEqual(fromLine2.events.map((event) => event.userId), ['u3'], 'resumed after line 2: the rows after it');
});

test('a last line without a line end is read, and passed over by a resumed read while it is unchanged', async () => {
  const config: HttpExportConfig = { url: `${base}/open-end.jsonl` };
  const openLine = '{"user_id":"u2","time":"2024-05-01T10:00:01Z","type":"view"}';
  exports['/open-end.jsonl'] = `{"user_id":"u1","time":"2024-05-01T10:00:00Z","type":"view"}\n${openLine}`;
  const first = await readAll(config);
  assert.deepEqual(first.events.map((event) => event.userId), ['u1', 'u2']);
  assert.deepEqual(first.position, { line: 1, unterminated: openLine.length }, 'the position stops before the open line');
  assert.deepEqual((await readAll(config, testContext(), first.position)).events, [], 'unchanged: not read again');
  exports['/open-end.jsonl'] += '\n{"user_id":"u3","time":"2024-05-01T10:00:02Z","type":"view"}\n';
  assert.deepEqual((await readAll(config, testContext(), first.position)).events.map((event) => event.userId), ['u3'], 'its line end and a line more written since: the new line only');
});

test('an HTTP error fails the source, naming the URL and the status', async () => {
  await assert.rejects(readAll({ url: `${base}/gone.jsonl` }), /\/gone\.jsonl: HTTP 404 Not Found$/);
});
