/**
 * Logs (pino) and metrics (prom-client) for a run, and the scoped views plugins get of them.
 */
import { isDeepStrictEqual } from 'node:util';
import { pino, type Logger, type LevelWithSilent, type LoggerOptions as PinoOptions } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { Counter as PromCounter, Gauge as PromGauge, Histogram as PromHistogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Counter, Gauge, GaugeFamily, Histogram, Metrics } from '../plugin.js';
import { errorCatalogue } from '../errors.js';
import { setOwnField } from '../fields.js';

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Human-readable lines instead of JSON; the CLI sets it when stderr is a terminal. */
  pretty?: boolean;
  /** Extra paths to redact, on top of the fields isSecret flags. */
  redact?: string[];
}

/** Field names that are secrets whatever their case, besides the endings isSecret knows: part of its rule, which logs follow too (redactLogValue). */
export const secretFieldNames = ['password', 'sasl_password', 'secret', 'token', 'api_key', 'apiKey', 'ssl_key_password', 'key_password', 'oauth_token', 'key_pem'];

const secretNames = new Set(secretFieldNames.map((name) => name.toLowerCase()));

/**
 * Whether a field holds a secret: its name ends like one (`password`, librdkafka's `ssl.key.pem`,
 * `sasl.oauthbearer.config`, `sasl.username`), or its value is a private key whatever the field. The
 * one rule for logs (every line createLogger writes, the kafka plugin's logged client properties) and
 * `validate --print` (redactSecrets):
 * the kafka plugin kept a list of its own (`sasl.username` in it), so `validate --print` showed a SASL
 * user written in `options` that its logs hid.
 */
export function isSecret(key: string, value: unknown): boolean {
  return (
    secretNames.has(key.toLowerCase()) ||
    /(password|secret|token|api_?key|key[._]pem|oauthbearer[._]config|sasl[._]username)$/i.test(key) ||
    (typeof value === 'string' && /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value))
  );
}

/** A copy of `value` with every secret-looking field's value replaced, for logs and printed config. */
export function redactSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item: unknown) => redactSecrets(item)) as T;
  if (typeof value !== 'object' || value === null) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    // setOwnField: a key __proto__ (YAML or JSON gives one as data) would otherwise set the copy's prototype, and be lost.
    setOwnField(copy, key, isSecret(key, field) ? '[redacted]' : redactSecrets(field));
  }
  return copy as T;
}

/**
 * The secret values (isSecret's fields) of the pipelines this process loaded, as written and as a URL
 * carries them: a text naming one (an error's message or stack, a plugin's own words) is said without
 * it. Set by {@link rememberSecretValues}.
 */
const secretValues = new Set<string>();

/** Shorter secret values are not scrubbed from texts: a 3-letter one would cut words out of every line, and is no secret. */
const shortestScrubbedSecret = 4;

/**
 * Remembers the secret values in `config` (a loaded pipeline's document, `${VAR}`s and `--set`s filled
 * in), so that every text a log line carries is said without them ({@link redactSecretText}). Process-wide,
 * as the logs are: the daemon's pipelines share one logger.
 */
export function rememberSecretValues(config: unknown): void {
  const collect = (value: unknown, depth: number): void => {
    if (typeof value !== 'object' || value === null || depth >= maxRedactedDepth) return;
    for (const [key, field] of Object.entries(value)) {
      if ((typeof field === 'string' || typeof field === 'number') && isSecret(key, field)) {
        const text = String(field);
        if (text.length < shortestScrubbedSecret) continue;
        secretValues.add(text);
        secretValues.add(encodeURIComponent(text));
      } else collect(field, depth + 1);
    }
  };
  collect(config, 0);
}

/** Query parameters that carry a credential besides isSecret's names (a signed URL's `sig`, an API's `key`). */
const secretQueryNames = /^(sig|signature|key|auth|pass|pwd|credentials?|code)$/i;

/**
 * `text` with its secrets replaced by `[redacted]`: the secret values of the loaded pipelines
 * (rememberSecretValues), a URL's user info (`https://user:pass@host`), a query parameter or `name=value`
 * whose name isSecret flags (`client_secret=...`, `?token=...`) or a credential's (`sig`, `key`), a JSON
 * field `"password": "..."`, and an HTTP `Bearer`/`Basic` credential. For the texts the field rule cannot see:
 * an error's message and stack, a message built from one.
 */
export function redactSecretText(text: string): string {
  let redacted = text;
  for (const value of secretValues) if (redacted.includes(value)) redacted = redacted.split(value).join('[redacted]');
  if (redacted.includes('://')) redacted = redacted.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@'"<>]+@/gi, '$1[redacted]@');
  if (redacted.includes('=')) {
    redacted = redacted.replace(/([?&;]|\b)([A-Za-z_][\w.%-]*)=("[^"]*"|'[^']*'|[^\s&#,;)"'<>]+)/g, (whole, before: string, name: string) => {
      const decoded = safeDecode(name);
      return isSecret(decoded, '') || (before !== '' && secretQueryNames.test(decoded)) ? `${before}${name}=[redacted]` : whole;
    });
  }
  if (redacted.includes('"')) redacted = redacted.replace(/"([\w.-]+)"(\s*:\s*)"(?:[^"\\]|\\.)*"/g, (whole, name: string, colon: string) => (isSecret(name, '') ? `"${name}"${colon}"[redacted]"` : whole));
  if (/\b(Bearer|Basic) /.test(redacted)) redacted = redacted.replace(/\b(Bearer|Basic) [A-Za-z0-9._~+/=-]{8,}/g, '$1 [redacted]');
  return redacted;
}

const safeDecode = (text: string): string => {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
};

/** How deep redactLogValue looks into a logged value: pino's own limit for a line's objects is 10 (depthLimit). */
const maxRedactedDepth = 10;

/**
 * `value` with each field isSecret flags replaced, and each text's secrets (redactSecretText), at any
 * depth, for a log line: the same object where
 * nothing is secret (a record is copied only along the paths to its secrets, and objects such as Errors,
 * Buffers and Dates are left to pino's serializers). Before, pino redacted a list of names to a depth
 * of 2, apart from isSecret: `sasl.username` and librdkafka's `ssl.key.pem` reached the logs that
 * `validate --print` hid, and so did a password three levels down.
 */
function redactLogValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecretText(value);
  if (typeof value !== 'object' || value === null || depth >= maxRedactedDepth) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item: unknown, index) => {
      const redacted = redactLogValue(item, depth + 1);
      if (redacted !== item) (copy ??= [...value])[index] = redacted;
    });
    return copy ?? value;
  }
  if (value instanceof Error || value instanceof Date || value instanceof Map || value instanceof Set || ArrayBuffer.isView(value)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, field] of Object.entries(value)) {
    const redacted = isSecret(key, field) ? '[redacted]' : redactLogValue(field, depth + 1);
    if (redacted === field) continue;
    if (copy === undefined) {
      copy = {};
      for (const [name, kept] of Object.entries(value)) setOwnField(copy, name, kept);
    }
    setOwnField(copy, key, redacted);
  }
  return copy ?? value;
}

/** A log record or a child logger's bindings with its secrets redacted (redactLogValue). */
function redactLogRecord(record: Record<string, unknown>): Record<string, unknown> {
  return redactLogValue(record) as Record<string, unknown>;
}

/** pino's options for a run's logger (createLogger). */
function loggerOptions(options: LoggerOptions): PinoOptions {
  return {
    level: options.level ?? 'info',
    ...(options.redact && options.redact.length > 0 ? { redact: { paths: options.redact, censor: '[redacted]' } } : {}),
    base: undefined,
    // Our messages already carry their cause's text; pino's default `err` serializer appends it again
    // ("a source failed: ENOENT ...: ENOENT ..."). This one keeps the message and nests the cause.
    // Redacted after serializing: an error's own fields (a client's config on it) are data too.
    serializers: { err: (error: Error) => redactLogValue(pino.stdSerializers.errWithCause(error)) },
    formatters: { log: (record) => liftErrorCode(redactLogRecord(record)) },
    // The message too: it is often built from an error's (`pipeline p failed: ${error.message}`).
    hooks: { logMethod(args, method) { method.apply(this, args.map((arg: unknown) => (typeof arg === 'string' ? redactSecretText(arg) : arg)) as Parameters<typeof method>); } },
  };
}

/**
 * A child's bindings redacted too: pino formats a child's bindings with no formatter of ours (it resets
 * `formatters.bindings` for children), so every logger made from `logger` redacts them as it is made.
 */
function redactingChildren(logger: Logger): Logger {
  const makeChild = logger.child;
  logger.child = function child(this: Logger, bindings, options) {
    return makeChild.call(this, redactLogRecord(bindings), options);
  } as Logger['child'];
  return logger;
}

/**
 * A run's logger, writing JSON lines to stderr (or `destination`). Every field isSecret flags is
 * redacted, at any depth, in a record, a child's bindings and a serialized error: the one rule that
 * `validate --print` and the kafka plugin's logged client properties follow.
 */
export function createLogger(options: LoggerOptions = {}, destination?: { write(line: string): void }): Logger {
  const base = loggerOptions(options);
  if (destination !== undefined) return redactingChildren(pino(base, destination));
  return redactingChildren(prettyOrStderr(base, options));
}

function prettyOrStderr(base: PinoOptions, options: LoggerOptions): Logger {
  if (options.pretty) {
    // Formatted here and written at once (stderr is synchronous on Linux), not in pino's worker thread:
    // a line is on the terminal when the call returns, so the lines the CLI writes itself (the summary
    // after the model verdicts, the progress line) come in the order things happened. Each line first
    // clears the one it lands on: a progress line (no newline; redrawn at its next tick) and not the log's start.
    const prettify = prettyFactory({ colorize: true, ignore: 'pid,hostname' });
    return pino(base, { write: (line: string) => void process.stderr.write(`\r\x1b[2K${prettify(line)}`) });
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/**
 * docs/errors.md promises every JSON error record its code at the top level, where a log query looks
 * for it: a record of an error with one of the catalogue's codes (a run's failure, `err: TributaryError`)
 * gets it as `code` beside `err.code`. Codes outside the catalogue (node's `ENOENT`) stay under `err`.
 */
export function liftErrorCode(record: Record<string, unknown>): Record<string, unknown> {
  const code = (record.err as { code?: unknown } | null | undefined)?.code;
  if (record.code !== undefined || typeof code !== 'string' || !Object.hasOwn(errorCatalogue, code)) return record;
  return { ...record, code };
}

/** One prom-client registry per process: every pipeline's series live in it, told apart by labels. */
export class MetricsHub {
  readonly registry = new Registry();
  private readonly metrics = new Map<string, PromCounter | PromGauge | PromHistogram>();
  /** Each metric's label names when made: prom-client refuses others with a message naming neither the metric nor the label. */
  private readonly labelNamesOf = new Map<string, readonly string[]>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    // prom-client's names already say process_ or nodejs_: tributary_process_cpu_user_seconds_total, tributary_nodejs_heap_size_used_bytes.
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'tributary_' });
  }

  private readonly observed = new Map<string, { labels: Record<string, string>; read: () => number }[]>();

  /** Histogram series made so far (name and labels): each is zeroed once, when made. */
  private readonly madeHistograms = new Set<string>();

  /**
   * A gauge (a counter for a `_total` name) read at scrape time: the runtime keeps plain numbers on its
   * hot path and Prometheus asks for them only when it scrapes. A gauge whose reader gives NaN (not
   * measured now) has no series until it gives a number. Observed again with the same labels (a
   * pipeline the daemon restarted in the process), the new reader replaces the old one, which would
   * keep the failed run (and all its state) alive; a count goes on from the old one's last value, as a
   * counter of the process must (a drop reads as a reset).
   */
  observe(name: string, help: string, labels: Record<string, string>, read: () => number): void {
    const fullName = `tributary_${name}`;
    let readers = this.observed.get(fullName);
    if (!readers) {
      const list: { labels: Record<string, string>; read: () => number }[] = [];
      readers = list;
      this.observed.set(fullName, list);
      // A count (`_total`) is a counter to Prometheus (rate() and resets), a level a gauge; both are read at scrape time.
      if (fullName.endsWith('_total')) {
        new PromCounter({
          name: fullName,
          help,
          labelNames: Object.keys(labels),
          registers: [this.registry],
          collect() {
            this.reset();
            for (const reader of list) {
              const value = reader.read();
              if (Number.isFinite(value) && value >= 0) this.inc(reader.labels, value);
            }
          },
        });
      } else {
        new PromGauge({
          name: fullName,
          help,
          labelNames: Object.keys(labels),
          registers: [this.registry],
          collect() {
            // A level not measured now (NaN: no watermark yet, no checkpoint) has no series, not the last
            // one's value: a pipeline restarted in the process showed its failed run's lag and checkpoint size.
            this.reset();
            for (const reader of list) {
              const value = reader.read();
              if (Number.isFinite(value)) this.set(reader.labels, value);
            }
          },
        });
      }
    }
    const same = readers.findIndex((reader) => isDeepStrictEqual(reader.labels, labels));
    if (same === -1) {
      readers.push({ labels, read });
      return;
    }
    if (fullName.endsWith('_total')) {
      const counted = readers[same]!.read();
      const before = Number.isFinite(counted) && counted > 0 ? counted : 0;
      readers[same] = { labels, read: () => before + read() };
    } else readers[same] = { labels, read };
  }

  /**
   * Metrics whose series all carry `labels` (pipeline, stage). A value that is no finite number given
   * to a counter (or to a gauge's inc or dec), or observed by a histogram, is ignored, said once per
   * metric on `logger`: the counter stayed NaN for good, and a histogram threw, which dead-lettered the
   * record a plugin was handling. A gauge set to NaN is kept (a model's AUC over labels of one class
   * is NaN: measured, and undefined).
   */
  scoped(labels: Record<string, string>, logger?: Logger): Metrics {
    const labelNames = Object.keys(labels);
    const said = new Set<string>();
    /** Whether `value` may go to metric `name`; when not, says so the first time. */
    const finite = (name: string, what: string, value: number | undefined): boolean => {
      if (value === undefined || Number.isFinite(value)) return true;
      if (!said.has(name)) {
        said.add(name);
        logger?.warn({ metric: `tributary_${name}`, value: String(value) }, `metric tributary_${name}: ${what} ${value} ignored (not a finite number); said once`);
      }
      return false;
    };
    const get = <M>(name: string, make: (fullName: string) => M, names: readonly string[] = labelNames): M => {
      const fullName = `tributary_${name}`;
      let metric = this.metrics.get(fullName);
      if (!metric) {
        metric = make(fullName) as PromCounter;
        this.metrics.set(fullName, metric);
        this.labelNamesOf.set(fullName, names);
      } else {
        const made = this.labelNamesOf.get(fullName) ?? [];
        const other = names.find((label) => !made.includes(label));
        if (other !== undefined) throw new Error(`metric ${fullName} was made with the labels ${made.join(', ')}; asked for again with '${other}' too`);
      }
      return metric as M;
    };
    return {
      // Counters and histograms export their series at 0 from the start: a series that only appears at
      // its first increment is invisible to rate() and to alerts until then.
      counter: (name, help): Counter => {
        const metric = get(name, (fullName) => new PromCounter({ name: fullName, help, labelNames, registers: [this.registry] }));
        metric.inc(labels, 0);
        const series = metric.labels(labels);
        return { inc: (amount) => void (finite(name, 'an increment of', amount) && series.inc(amount)) };
      },
      gauge: (name, help): Gauge => {
        const metric = get(name, (fullName) => new PromGauge({ name: fullName, help, labelNames, registers: [this.registry] }));
        const series = metric.labels(labels);
        return {
          set: (value) => series.set(value),
          inc: (amount) => void (finite(name, 'an increment of', amount) && series.inc(amount)),
          dec: (amount) => void (finite(name, 'a decrement of', amount) && series.dec(amount)),
        };
      },
      gaugeFamily: (name, help, ownLabelNames): GaugeFamily => {
        const clash = ownLabelNames.find((label) => labelNames.includes(label));
        if (clash !== undefined) throw new Error(`metric ${name}: label '${clash}' is the runtime's own (${labelNames.join(', ')}); name it otherwise`);
        const metric = get(name, (fullName) => new PromGauge({ name: fullName, help, labelNames: [...labelNames, ...ownLabelNames], registers: [this.registry] }), [...labelNames, ...ownLabelNames]);
        // The scope's labels first, then the family's own, each named (a series' labels are these and no others).
        const series = (values: Readonly<Record<string, string>>): Record<string, string> => {
          const all: Record<string, string> = { ...labels };
          for (const label of ownLabelNames) {
            const value = values[label];
            if (value === undefined) throw new Error(`metric ${name}: no value for its label '${label}'`);
            all[label] = value;
          }
          return all;
        };
        return {
          set: (values, value) => metric.set(series(values), value),
          remove: (values) => metric.remove(series(values)),
        };
      },
      histogram: (name, help, buckets): Histogram => {
        const metric = get(name, (fullName) =>
          new PromHistogram({ name: fullName, help, labelNames, registers: [this.registry], ...(buckets ? { buckets: [...buckets] } : {}) }),
        );
        // At 0 when made. Asked for again (a pipeline the daemon restarted in the process makes its plugins
        // anew) it goes on from its counts, as a counter does: zeroed, its _count went backwards, which
        // Prometheus reads as a reset, while the counters beside it carried on.
        const key = `${name}\0${JSON.stringify(labels)}`;
        if (!this.madeHistograms.has(key)) {
          this.madeHistograms.add(key);
          metric.zero(labels);
        }
        const series = metric.labels(labels);
        return { observe: (value) => void (finite(name, 'an observation of', value) && series.observe(value)) };
      },
      withLabels: (extra) => {
        const clash = Object.keys(extra).find((label) => labelNames.includes(label));
        if (clash !== undefined) throw new Error(`label '${clash}' is already set on these metrics (${labelNames.join(', ')}); name it otherwise`);
        return this.scoped({ ...labels, ...extra }, logger);
      },
    };
  }
}
