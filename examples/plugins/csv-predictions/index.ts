/**
 * `csv-predictions`: an example of a user's sink plugin. It writes the predictions of a pipeline's
 * models to a CSV file, one row each, those scoring at least `min_score` only. The rows it skips are
 * counted as filtered (countFiltered in write), a diverged model's predictions (score NaN) are
 * dead-lettered, and what it wrote is durable (fsynced) when `flush` resolves, as the runtime needs before
 * the sources commit their input.
 *
 * It uses only the public API ('tributary'), as every plugin must.
 */
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { defineSink, isPrediction, makeFolderDurably } from 'tributary';

export interface CsvPredictionsConfig {
  path: string;
  min_score: number;
}

export const CSV_HEADER = 'id,model,task,userId,sessionId,time,score\n';

/** Text buffered before write() says it is full (ready() a promise): back pressure. */
const FULL_CHARS = 1 << 20;

/** A CSV field: quoted where it holds a quote, a comma or a line end (RFC 4180). */
function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const csvPredictions = defineSink<CsvPredictionsConfig>({
  name: 'csv-predictions',
  status: 'experimental',
  kinds: ['prediction'], // write() is handed nothing else; other kinds count as filtered, not as written
  summary: 'Writes predictions to a CSV file, one row each (id, model, task, userId, sessionId, time, score).',
  config: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: {
      path: { type: 'string', description: 'The CSV file, relative to the pipeline file. Replaced as the run starts; appended to by a restart from a checkpoint.' },
      min_score: { type: 'number', minimum: 0, maximum: 1, default: 0, description: 'Rows only for predictions scoring at least this; the others are counted as filtered.' },
    },
  },
  examples: [{ path: 'out/predictions.csv', min_score: 0.5 }],
  // The file it replaces as the run starts: `validate` and `run` refuse a pipeline whose source reads it, and
  // `tributary backtest` an --input that is it, before anything is replaced.
  outputFiles: (config) => [{ path: config.path, field: 'path' }],
  create(config, context) {
    const file = resolve(context.baseDir, config.path);
    let handle: FileHandle | undefined;
    let buffered: string[] = [];
    let bufferedChars = 0;
    let writing: Promise<void> | undefined;
    async function writeBuffered(): Promise<void> {
      while (buffered.length > 0) {
        const text = buffered.join('');
        buffered = [];
        bufferedChars = 0;
        await handle!.write(text);
      }
    }
    return {
      // Opened here, not in create: a pipeline that fails to start leaves the last run's file as it was.
      async open() {
        await makeFolderDurably(dirname(file));
        handle = await openFile(file, context.resuming ? 'a' : 'w');
        if (!context.resuming) buffered.push(CSV_HEADER);
      },
      write(record) {
        if (!isPrediction(record)) return; // not reached: `kinds` hands it predictions only
        if (Number.isNaN(record.score)) return context.deadLetter({ reason: 'prediction of a diverged model: score is not a number', raw: record });
        if (record.score < config.min_score) return context.countFiltered(1, 'below min_score');
        const row = [record.id, record.model, record.task, record.userId, record.sessionId ?? '', String(record.time), String(record.score)];
        const line = `${row.map(csvField).join(',')}\n`;
        buffered.push(line);
        bufferedChars += line.length;
      },
      ready() {
        if (bufferedChars < FULL_CHARS) return undefined;
        writing ??= writeBuffered().finally(() => (writing = undefined));
        return writing;
      },
      async flush() {
        await writing;
        await writeBuffered();
        await handle?.sync();
      },
      async close() {
        if (handle === undefined) return; // never opened: nothing to write
        await writing;
        await writeBuffered();
        await handle.close();
        handle = undefined;
      },
    };
  },
});

export default [csvPredictions];
