import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineSource, needsPerson, TributaryError } from 'tributary';
import { PluginHookError, recordCountOf, replayNotesOf } from './plugin-hooks.js';

const noSource = { async *read() {} };

/** A source whose replayNotes and countRecords return what `give` does (tests only). */
function sourceGiving(give: () => unknown) {
  return defineSource<Record<string, never>>({
    name: 'giving',
    summary: 'Tests only.',
    config: { type: 'object' },
    replayNotes: give as never,
    countRecords: (async () => give()) as never,
    create: () => noSource,
  });
}

/** What `run` rejects or throws with, as `name: message (code)`; '' where it gives a value. */
async function failure(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof TributaryError, String(error));
    assert.ok(needsPerson(error), 'a person mends a plugin: exit 2, no restart');
    return `${error.name}: ${error.message} (${error.code})`;
  }
  return '';
}

test("a backtest's hooks (replayNotes, countRecords) that return the wrong shape are said naming the plugin and the hook, not read as notes or a count (was: a string's letters logged one by one as notes; a negative count as the total)", async () => {
  const notes = (value: unknown): Promise<string> => failure(() => replayNotesOf(sourceGiving(() => value), {}, { entry: '$.sources[0]' }));
  assert.equal(await notes('reads the key'), `PluginHookError: source 'giving': its replayNotes(config) returned "reads the key"; it must return a list of notes, each a string ([] for none) (TRIB_ERR_PLUGIN_LOAD)`);
  assert.equal(await notes(['a note', 3]), `PluginHookError: source 'giving': its replayNotes(config) returned ["a note",3]: item 1 (3) is not a string; it must return a list of notes, each a string ([] for none) (TRIB_ERR_PLUGIN_LOAD)`);
  assert.deepEqual(replayNotesOf(sourceGiving(() => ['a note']), {}), ['a note']);
  const count = (value: unknown): Promise<string> => failure(() => recordCountOf(sourceGiving(() => value), {}, '/data'));
  const expected = 'it must return a promise of a count (a number of 0 or more), or of undefined where it is not known';
  assert.equal(await count(-1), `PluginHookError: source 'giving': its countRecords(config, baseDir) returned -1; ${expected} (TRIB_ERR_PLUGIN_LOAD)`);
  assert.equal(await count('12'), `PluginHookError: source 'giving': its countRecords(config, baseDir) returned "12"; ${expected} (TRIB_ERR_PLUGIN_LOAD)`);
  assert.equal(await count(Number.NaN), `PluginHookError: source 'giving': its countRecords(config, baseDir) returned NaN; ${expected} (TRIB_ERR_PLUGIN_LOAD)`);
  assert.equal(await recordCountOf(sourceGiving(() => 12), {}, '/data'), 12);
  assert.equal(await recordCountOf(sourceGiving(() => undefined), {}, '/data'), undefined);
  // Absent hooks: nothing to say, nothing known.
  const bare = defineSource<Record<string, never>>({ name: 'bare', summary: 'Tests only.', config: { type: 'object' }, create: () => noSource });
  assert.deepEqual(replayNotesOf(bare, {}), []);
  assert.equal(await recordCountOf(bare, {}, '/data'), undefined);
});

test('a hook that throws is said with the plugin and the hook, its error kept as the cause; a TributaryError it throws is its own', async () => {
  const cause = new RangeError('no such zone');
  const said = await failure(() =>
    replayNotesOf(
      sourceGiving(() => {
        throw cause;
      }),
      {},
    ),
  );
  assert.equal(said, "PluginHookError: source 'giving': its replayNotes(config) threw: no such zone (TRIB_ERR_PLUGIN_LOAD)");
  const rejected = await failure(() =>
    recordCountOf(
      sourceGiving(() => {
        throw cause;
      }),
      {},
      '/data',
    ),
  );
  assert.equal(rejected, "PluginHookError: source 'giving': its countRecords(config, baseDir) failed: no such zone (TRIB_ERR_PLUGIN_LOAD)");
  const throwing = sourceGiving(() => {
    throw cause;
  });
  assert.throws(() => replayNotesOf(throwing, {}), (error) => error instanceof PluginHookError && error.cause === cause);
  const own = new TributaryError('TRIB_ERR_SOURCE', 'the broker is out of reach');
  const throwsOwn = sourceGiving(() => {
    throw own;
  });
  assert.throws(() => replayNotesOf(throwsOwn, {}), (error) => error === own);
});
