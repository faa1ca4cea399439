import { test } from 'node:test';
import assert from 'node:assert/strict';
import { from, lastValueFrom, map, Subject, toArray, type Observable } from 'rxjs';
import { pino } from 'pino';
import { composeOperators, isClickEvent, MetricsHub, recordOperator, watermark, type Element, type Emit, type Prediction, type RecordHandlers, type SessionSummary, type StageTimer } from 'tributary';
import { testContext } from './testing.js';

const rec = (id: string): Element => ({ kind: 'event', userId: id, time: 0, type: 'view' });
const idOf = (element: Element): string => (element.kind === 'watermark' ? `wm${element.time}` : (element as unknown as { userId: string }).userId);

/** A record operator whose handlers log what they see, labelled `label`. */
function stage(label: string, log: string[], handlers: Partial<RecordHandlers> = {}) {
  const context = testContext({ label });
  const apply = recordOperator(context, () => ({
    record: (record, emit) => {
      log.push(`${label}:${idOf(record)}`);
      emit(record);
    },
    finalize: () => void log.push(`${label}:finalize`),
    ...handlers,
  }));
  return { context, apply };
}

const collect = (stream: Observable<Element>): Promise<string[]> => lastValueFrom(stream.pipe(toArray())).then((out) => out.map(idOf));

test('a fused run dead-letters a record in the stage that threw, and goes on', async () => {
  const log: string[] = [];
  const a = stage('a', log, { record: (record, emit) => (idOf(record) === 'twice' ? (emit(rec('x1')), emit(rec('x2'))) : emit(record)) });
  const b = stage('b', log, {
    record: (record, emit) => {
      if (idOf(record) === 'x1') throw new Error('boom');
      emit(record);
    },
  });
  const c = stage('c', log);
  const out = await collect(composeOperators([a, b, c], from([rec('r1'), rec('twice'), rec('r2')])));
  assert.deepEqual(out, ['r1', 'x2', 'r2']);
  assert.deepEqual(b.context.deadLetters.map((r) => r.reason), ['b: boom']);
  assert.equal((b.context.deadLetters[0]!.raw as Element | undefined) && idOf(b.context.deadLetters[0]!.raw as Element), 'x1');
  assert.equal(a.context.deadLetters.length + c.context.deadLetters.length, 0, 'only the throwing stage dead-letters');
});

test('watermarks pass after their handler, in order with records, and what it emits reaches later stages', async () => {
  const log: string[] = [];
  const a = stage('a', log, { watermark: (mark, emit) => emit(rec(`closed-before-${mark.time}`)) });
  const b = stage('b', log, { watermark: (mark) => void log.push(`b:wm${mark.time}`) });
  const out = await collect(composeOperators([a, b], from([rec('r1'), watermark(5), rec('r2')])));
  assert.deepEqual(out, ['r1', 'closed-before-5', 'wm5', 'r2']);
  assert.deepEqual(log.filter((line) => line.startsWith('b:') && !line.endsWith('finalize')), ['b:r1', 'b:closed-before-5', 'b:wm5', 'b:r2']);
});

test('a stage holds back the watermark it passes on: later stages see the time it returns, never above the one received, never back, never twice; the end of input passes', async () => {
  // What stage a returns for each watermark received (undefined: pass it as received).
  const returns = new Map<number, number | undefined>([[5, undefined], [10, 7], [12, 7], [15, 20], [16, 3], [17, -Infinity], [18, 16], [Infinity, 16]]);
  for (const sampling of [false, true]) {
    const log: string[] = [];
    const a = stage('a', log, { watermark: (mark) => returns.get(mark.time) });
    const b = stage('b', log, { watermark: (mark) => void log.push(`b:wm${mark.time}`) });
    const timer: StageTimer = { sampling, timed: (_index, deliver) => deliver };
    const input = [...returns.keys()].map((time) => watermark(time));
    const out = await collect(composeOperators([a, b], from(input), timer));
    assert.deepEqual(out, ['wm5', 'wm7', 'wm15', 'wm16', 'wmInfinity'], sampling ? 'sampled' : 'unsampled');
    assert.deepEqual(log.filter((line) => line.startsWith('b:wm')), ['b:wm5', 'b:wm7', 'b:wm15', 'b:wm16', 'b:wmInfinity']);
  }
});

test('a watermark a holding stage emits from record counts as passed: a later time it returns at or below it does not pass, so later stages never see time go back', async () => {
  for (const sampling of [false, true]) {
    for (const last of [false, true]) {
      const log: string[] = [];
      // a holds at 7, passes 9 itself as a record comes, then returns 8 (below it), 9 (equal) and 11.
      const returns = new Map<number, number>([[10, 7], [12, 8], [14, 9], [16, 11]]);
      const a = stage('a', log, {
        record: (record, emit) => (emit(record), emit(watermark(9))),
        watermark: (mark) => returns.get(mark.time),
      });
      const b = stage('b', log, { watermark: (mark) => void log.push(`b:wm${mark.time}`) });
      const timer: StageTimer = { sampling, timed: (_index, deliver) => deliver };
      const input = [watermark(10), rec('r'), watermark(12), watermark(14), watermark(16)];
      // Last in its run, what a emits leaves the fused run directly.
      const out = await collect(composeOperators(last ? [a] : [a, b], from(input), timer));
      assert.deepEqual(out, ['wm7', 'r', 'wm9', 'wm11'], `${sampling ? 'sampled' : 'unsampled'}, ${last ? 'last' : 'before b'}`);
    }
  }
});

test('complete runs stage by stage, and what one emits reaches the later stages before they complete', async () => {
  const log: string[] = [];
  const a = stage('a', log, { complete: (emit) => (log.push('a:complete'), emit(rec('from-a'))) });
  const b = stage('b', log, { complete: (emit) => (log.push('b:complete'), emit(rec('from-b'))) });
  const out = await collect(composeOperators([a, b], from([rec('r1')])));
  assert.deepEqual(out, ['r1', 'from-a', 'from-b']);
  assert.deepEqual(log, ['a:r1', 'b:r1', 'a:complete', 'b:from-a', 'b:complete', 'a:finalize', 'b:finalize']);
});

test('an exception in complete or in a watermark handler errors the stream; every stage is finalized', async () => {
  for (const [name, handlers] of [
    ['complete', { complete: () => { throw new Error('nope'); } }],
    ['watermark', { watermark: () => { throw new Error('nope'); } }],
  ] as const) {
    const log: string[] = [];
    const stages = [stage('a', log), stage('b', log, handlers), stage('c', log)];
    await assert.rejects(collect(composeOperators(stages, from([rec('r1'), watermark(1), rec('r2')]))), /nope/, name);
    if (name === 'watermark') assert.ok(!log.includes('c:wm1') && !log.includes('c:r2'), 'nothing reaches a stage after the failure');
    assert.deepEqual(log.filter((line) => line.endsWith('finalize')), ['a:finalize', 'b:finalize', 'c:finalize'], name);
  }
});

test('every stage is finalized on unsubscribe', () => {
  const log: string[] = [];
  const input = new Subject<Element>();
  const subscription = composeOperators([stage('a', log), stage('b', log)], input).subscribe();
  input.next(rec('r1'));
  subscription.unsubscribe();
  input.next(rec('r2'));
  assert.deepEqual(log, ['a:r1', 'b:r1', 'a:finalize', 'b:finalize']);
});

test('a raw RxJS operator between record operators goes through its own apply; a record operator still applies alone', async () => {
  const log: string[] = [];
  const a = stage('a', log, { watermark: (mark, emit) => emit(rec(`at-${mark.time}`)) });
  const raw = { apply: (input: Observable<Element>) => input.pipe(map((e) => (e.kind === 'watermark' ? e : rec(`${idOf(e)}'`)))) };
  const b = stage('b', log, { record: (record, emit) => { if (idOf(record) === "bad'") throw new Error('no'); emit(record); } });
  const out = await collect(composeOperators([a, raw, b], from([rec('r1'), rec('bad'), watermark(2)])));
  assert.deepEqual(out, ["r1'", "at-2'", 'wm2']);
  assert.deepEqual(b.context.deadLetters.map((r) => r.reason), ['b: no']);
  assert.deepEqual(await collect(a.apply(from([rec('r1'), watermark(3)]))), ['r1', 'at-3', 'wm3']);
});

test('with a timer, each boundary is timed once per element while sampling, and not at all otherwise', async () => {
  const timed: number[] = [];
  const timer: StageTimer = {
    sampling: true,
    timed: (index: number, deliver: Emit) => (element) => {
      timed.push(index);
      deliver(element);
    },
  };
  const log: string[] = [];
  const raw = { apply: (input: Observable<Element>) => input };
  // Boundaries: 0 (a), 1 (b), 2 (raw, after the run), 3 (raw2, probe), 4 (c), 5 (output).
  const operators = [stage('a', log), stage('b', log), raw, { ...raw }, stage('c', log)];
  await collect(composeOperators(operators, from([rec('r1')]), timer));
  assert.deepEqual(timed, [0, 1, 2, 3, 4, 5]);
  timed.length = 0;
  await collect(composeOperators(operators, from([rec('r1')]), { ...timer, sampling: false }));
  assert.deepEqual(timed, []);
});

test('a record a stage emits after its input ended (from a timer) reaches nothing: it is counted in records_emitted_after_end_total and said once, naming the stage', async () => {
  const hub = new MetricsHub();
  const logged: { msg: string; stage?: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as { msg: string; stage?: string }) });
  const log: string[] = [];
  let later: Emit | undefined;
  const scorer = stage('scorer', log, { record: (record, emit) => ((later = emit), emit(record)) });
  Object.assign(scorer.context, { metrics: hub.scoped({ pipeline: 'p', stage: 'scorer' }), logger });
  let lastLater: Emit | undefined;
  const after = stage('after', log, { record: (record, emit) => ((lastLater = emit), emit(record)) });
  Object.assign(after.context, { metrics: hub.scoped({ pipeline: 'p', stage: 'after' }), logger });
  const out = await collect(composeOperators([scorer, after], from([rec('r1')])));
  assert.deepEqual(out, ['r1']);
  assert.match(await hub.registry.metrics(), /^tributary_records_emitted_after_end_total\{pipeline="p",stage="scorer"\} 0$/m, 'exported at 0 from the start');
  // The stage's timer fires once the input ended.
  later!(rec('late1'));
  later!(rec('late2'));
  later!(watermark(9));
  assert.ok(!log.includes('after:late1'), 'nothing reaches the next stage');
  // The last stage's too (it hands its records to the output).
  lastLater!(rec('late3'));
  const text = await hub.registry.metrics();
  assert.match(text, /^tributary_records_emitted_after_end_total\{pipeline="p",stage="scorer"\} 2$/m);
  assert.match(text, /^tributary_records_emitted_after_end_total\{pipeline="p",stage="after"\} 1$/m);
  assert.deepEqual(logged.map((entry) => entry.stage), ['scorer', 'after'], 'said once per stage');
  assert.match(logged[0]!.msg, /^scorer emitted a record after its input had ended/);
});

test('an operator emits the record types it builds (Prediction, SessionSummary) and sends a ClickEvent to a side output without a cast (they were interfaces, not StreamRecords: `as unknown as StreamRecord`)', async () => {
  const context = testContext();
  const apply = recordOperator(context, () => ({
    record(record, emit) {
      if (!isClickEvent(record)) return emit(record);
      if (record.type === 'late') return context.sideOutput('late', record);
      const prediction: Prediction = { kind: 'prediction', id: 'p', model: 'm', modelVersion: '1.0', task: 'intent', userId: record.userId, time: record.time, score: 0.5 };
      const summary: SessionSummary = { kind: 'session', userId: record.userId, sessionId: 's', start: 0, end: record.time, eventCount: 1, counts: { view: 1 }, purchased: false };
      emit(prediction);
      emit(summary);
    },
  }));
  const out = await lastValueFrom(apply(from<Element[]>([rec('u'), { kind: 'event', userId: 'v', time: 1, type: 'late' }])).pipe(toArray()));
  assert.deepEqual(out.map((r) => r.kind), ['prediction', 'session']);
  assert.deepEqual(context.sideOutputs.map((s) => [s.name, s.record['userId']]), [['late', 'v']]);
});
