import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSummaries } from '../testing.js';
import { httpHostProblem } from './commands.js';
import { lookup } from 'node:dns/promises';
import { boundedSpawnSync, spawnTributary } from 'tributary/testing';
import { cli, dir, tributary, pipeline } from './cli-test-helpers.js';

test('SIGTERM stops an unbounded pipeline cleanly: sinks flushed, summary printed, exit 0', async (t) => {
  const out = join(dir, 'unbounded.jsonl');
  const file = pipeline('unbounded.yaml', `sources: [{type: synthetic, events: 0, rate: 2000}]\nsinks: [{type: file, path: ${out}}]\n`);
  const run = spawnTributary(t, ['run', file, '--log-level', 'warn'], { cwd: dir });
  // Wait until output reaches the file (the sink flushes at least every 200 ms), then stop it.
  await run.started(() => existsSync(out) && statSync(out).size > 0, 'output');
  assert.equal(await run.stop(), 0, run.stderr);
  assert.match(run.stderr, /stopped/);
  const eventsIn = runSummaries(run.stderr)[0]!.eventsIn;
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(lines.length, eventsIn, 'every event read was written before exit');
  for (const line of lines) JSON.parse(line);
});

/**
 * Runs the command with a SIGHUP sent to it while it loads its commands (once main.ts caught the
 * signals, before run.ts or backtest.ts ran): a module hook sends it as './commands.js' is imported.
 */
function withEarlyHangup(...args: string[]): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const hooks = join(dir, 'hangup-hooks.mjs');
  writeFileSync(hooks, `export async function resolve(specifier, context, next) {\n  if (specifier === './commands.js') process.kill(process.pid, 'SIGHUP');\n  return next(specifier, context);\n}\n`);
  const register = join(dir, 'hangup-register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`);
  const result = boundedSpawnSync(process.execPath, ['--import', register, cli, ...args], { cwd: dir, encoding: 'utf8' });
  return { status: result.status, signal: result.signal, stderr: result.stderr };
}

test('a SIGHUP while `run` or `backtest` is still loading is ignored (was the end of the process: no output, exit 129); any other command ends as before', () => {
  const out = join(dir, 'early-hangup.jsonl');
  const file = pipeline('early-hangup.yaml', `name: early-hangup\nsources: [{type: synthetic, events: 2000}]\nsinks: [{type: file, path: ${out}}]\n`);
  const run = withEarlyHangup('run', file, '--log-level', 'warn');
  assert.deepEqual([run.status, run.signal], [0, null], run.stderr);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 2000, 'every event written');
  const report = join(dir, 'early-hangup-report');
  const backtest = withEarlyHangup('backtest', file, '--input', out, '--report', report, '--set', `sinks[0].path=${join(dir, 'early-hangup-replayed.jsonl')}`, '--log-level', 'warn');
  assert.deepEqual([backtest.status, backtest.signal], [0, null], backtest.stderr);
  assert.equal((JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8')) as { events: number }).events, 2000);
  const validate = withEarlyHangup('validate', file);
  assert.deepEqual([validate.status, validate.signal], [null, 'SIGHUP'], 'SIGHUP\'s default action, once validate had it back');
});

test('SIGTERM while the command is still loading (before any pipeline started) ends it cleanly, saying so, not with 143 and no word', async (t) => {
  const out = join(dir, 'early-stop.jsonl');
  const file = pipeline('early-stop.yaml', `sources: [{type: synthetic, events: 0, rate: 2000}]\nsinks: [{type: file, path: ${out}}]\n`);
  const run = spawnTributary(t, ['run', file, '--log-level', 'debug'], { cwd: dir });
  // The first line it logs, before it loads the pipelines and their plugins (a second or more): stopped as it comes
  // (seen within started()'s 10 ms poll, far less than the load).
  await run.started(() => run.stderr.includes('"msg":"loading pipelines"'), 'the log line "loading pipelines"');
  assert.equal(await run.stop(), 0, run.stderr);
  const stderr = run.stderr;
  // Almost always still loading; should the load have ended first, the run was stopped in order.
  // Not on a terminal, both are JSON log records.
  const said = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; outcome?: string });
  assert.ok(said.some((entry) => entry.msg === 'stopped by SIGTERM before any pipeline started: nothing was read or written' || entry.outcome === 'stopped'), stderr);
  if (/before any pipeline started/.test(stderr)) assert.equal(existsSync(out), false, 'nothing was written');
});

test('--http-port that is not a port (abc, 99999, -1, 1.5) is a usage error, exit 2, said before anything runs', () => {
  const file = pipeline('http-port.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${join(dir, 'http-port-out.jsonl')}}]\n`);
  for (const port of ['abc', '99999', '-1', '1.5']) {
    const result = tributary('run', file, `--http-port=${port}`, '--log-level', 'warn');
    assert.equal(result.status, 2, `${port}: ${result.stderr}`);
    assert.ok(result.stderr.includes(`"msg":"--http-port ${port}: not a port (a whole number from 0 to 65535; 0: any free port)"`), result.stderr);
  }
  assert.equal(existsSync(join(dir, 'http-port-out.jsonl')), false, 'nothing ran');
  assert.equal(tributary('run', file, '--http-port=0', '--log-level', 'warn').status, 0);
});

test('a second daemon given the --http-port the first serves on exits 2 (TRIB_ERR_HTTP_PORT, not restarted by the unit for ever: it was exit 1), after trying the port again for 5 s, naming the port, its flag and how to see who holds it; the first serves on', async (t) => {
  const logged = (stderr: string): { level: number; msg: string; code?: string; port?: number }[] =>
    stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string; code?: string; port?: number });
  const first = spawnTributary(t, ['run', pipeline('port-first.yaml', `sources: [{type: stdin}]\nsinks: [{type: file, path: ${join(dir, 'port-first.jsonl')}}]\n`), '--http-port', '0', '--log-level', 'info'], { cwd: dir, stdin: true });
  const serving = (): number | undefined => logged(first.stderr.slice(0, first.stderr.lastIndexOf('\n') + 1)).find((entry) => entry.msg === 'serving /healthz, /readyz, /metrics')?.port;
  await first.started(() => serving() !== undefined, 'the first daemon serving');
  const port = serving()!;

  const out = join(dir, 'port-second.jsonl');
  const began = Date.now();
  const second = tributary('run', pipeline('port-second.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${out}}]\n`), '--http-port', String(port));
  assert.equal(second.status, 2, second.stderr);
  assert.ok(Date.now() - began >= 5000, 'it tried the port again for 5 s');
  const records = logged(second.stderr);
  assert.ok(records.some((entry) => entry.level === 40 && entry.msg === `port ${port} on 127.0.0.1 (--http-port) is in use; trying it again for up to 5 s (a previous instance still shutting down?)`), second.stderr);
  const refusals = records.filter((entry) => entry.code === 'TRIB_ERR_HTTP_PORT');
  assert.equal(refusals.length, 1, second.stderr);
  assert.equal(refusals[0]!.level, 50);
  assert.equal(
    refusals[0]!.msg,
    `TRIB_ERR_HTTP_PORT: cannot serve /healthz, /readyz and /metrics on 127.0.0.1:${port} (--http-host, --http-port): port ${port} is in use by another process (another daemon on this host?), still after 5 s: see which with \`ss -ltnp 'sport = :${port}'\` (or \`lsof -nP -iTCP:${port} -sTCP:LISTEN\`); stop it or give this daemon another --http-port`,
  );
  assert.equal(existsSync(out), false, 'nothing ran');

  assert.equal(await (await fetch(`http://127.0.0.1:${port}/healthz`)).text(), 'ok\n', 'the first serves on');
  first.child.stdin!.end();
  assert.equal(await first.stop(), 0, first.stderr);
});

test('a daemon whose --http-host address no interface has yet waits for it, warned, and a SIGTERM meanwhile ends it cleanly, exit 0, nothing run (was: exit 1 at once, restarted every 5 s)', async (t) => {
  const logged = (stderr: string): { level: number; msg: string; code?: string }[] =>
    stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string; code?: string });
  const host = '192.0.2.1'; // TEST-NET-1 (RFC 5737): no interface has it
  const out = join(dir, 'http-address-out.jsonl');
  const run = spawnTributary(t, ['run', pipeline('http-address.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${out}}]\n`), '--http-port', '0', '--http-host', host, '--log-level', 'info'], { cwd: dir });
  const warning = `no network interface of this host has address ${host} (--http-host) yet; trying it again for up to 30 s (an interface still coming up?)`;
  await run.started(() => run.stderr.includes(warning), 'the warning');
  assert.equal(await run.stop(), 0, run.stderr);
  const records = logged(run.stderr);
  assert.ok(records.some((entry) => entry.level === 40 && entry.msg === warning), run.stderr);
  assert.deepEqual(records.filter((entry) => entry.level >= 50), [], run.stderr);
  assert.equal(existsSync(out), false, 'nothing ran');
});

test('an --http-host whose name does not resolve is a usage error: one line naming it, exit 2, said before anything runs (was a stack trace, exit 1, after the pipeline had started)', async (t) => {
  const host = 'no.such.host.invalid';
  const answer = await lookup(host).then(
    () => 'an address',
    (error: NodeJS.ErrnoException) => error.code,
  );
  if (answer !== 'ENOTFOUND') return t.skip(`this host's resolver answers ${host} with ${answer}, not ENOTFOUND`);
  const out = join(dir, 'http-host-out.jsonl');
  const file = pipeline('http-host.yaml', `sources: [{type: synthetic, events: 10}]\nsinks: [{type: file, path: ${out}}]\n`);
  const result = tributary('run', file, '--http-port', '0', '--http-host', host);
  assert.equal(result.status, 2, result.stderr);
  const records = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { level: number; code: string; msg: string; help: string; err?: unknown });
  const message = `--http-host ${host}: no such host (the name does not resolve); give a name or address of this host, e.g. 127.0.0.1, or 0.0.0.0 for every interface`;
  assert.deepEqual(records.map(({ level, code, msg, help, err }) => ({ level, code, msg, help, err })), [{ level: 50, code: 'TRIB_ERR_USAGE', msg: message, help: 'tributary run --help', err: undefined }]);
  assert.equal(existsSync(out), false, 'nothing ran');
});

test('httpHostProblem: only a name that does not exist (ENOTFOUND) is a usage error; a resolver that did not answer (EAI_AGAIN) is left to the listen, which a restart may mend', async () => {
  const failing = (code: string) => () => Promise.reject(Object.assign(new Error(`getaddrinfo ${code}`), { code }));
  assert.match((await httpHostProblem('nowhere', failing('ENOTFOUND'))) ?? '', /^--http-host nowhere: no such host/);
  assert.equal(await httpHostProblem('slow-dns', failing('EAI_AGAIN')), undefined);
  assert.equal(await httpHostProblem('127.0.0.1'), undefined);
  assert.equal(await httpHostProblem('localhost'), undefined);
});
