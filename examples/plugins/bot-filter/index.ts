/**
 * `bot-filter`: an example of a user's operator plugin. It drops the events of any user who makes
 * more than `max_events` events within `window` of event time: real shoppers do not click 100 times
 * a minute, crawlers do. Dropped events are counted as filtered, so the pipeline's books still
 * balance (in = out + dead-lettered + filtered).
 *
 * It uses only the public API ('tributary'), as every plugin must.
 */
import { defineOperator, isClickEvent, parseDuration, recordOperator, type Duration } from 'tributary';

export interface BotFilterConfig {
  max_events: number;
  window: Duration;
}

export const botFilter = defineOperator<BotFilterConfig>({
  name: 'bot-filter',
  state: 'keyed',
  emits: [], // it drops events, and makes none: sinks' kinds stay checked
  featureNames: () => [], // it writes no feature: a resume does not take an edit of its config for a feature stage's
  status: 'experimental',
  summary: 'Drops events of users making more than `max_events` events within `window` of event time.',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      max_events: { type: 'integer', minimum: 1, default: 60, description: 'Most events a person makes within `window`.' },
      window: { $ref: 'tributary:duration', default: '1m', description: 'The sliding event-time window.' },
    },
  },
  examples: [{ max_events: 60, window: '1m' }],
  create(config, context) {
    const windowMs = parseDuration(config.window);
    const dropped = context.metrics.counter('bot_filter_dropped_total', 'Events dropped as bot traffic.');
    // Per user: times of their recent events. Pruned as the watermark passes, so state stays bounded.
    const recent = new Map<string, number[]>();
    return {
      apply: recordOperator(context, () => ({
        record(record, emit) {
          if (!isClickEvent(record)) return emit(record); // narrows `record` to a ClickEvent below
          const event = record;
          let times = recent.get(event.userId);
          if (!times) recent.set(event.userId, (times = []));
          times.push(event.time);
          while (times.length > 0 && times[0]! <= event.time - windowMs) times.shift();
          if (times.length > config.max_events) {
            dropped.inc();
            context.countFiltered(1, 'bot traffic');
            return;
          }
          emit(record);
        },
        watermark(mark) {
          for (const [user, times] of recent) if (times[times.length - 1]! <= mark.time - windowMs) recent.delete(user);
        },
      })),
      snapshot: () => Object.fromEntries(recent),
      // Typed as what snapshot() returns: a checkpoint gives back exactly that, as JSON.
      restore(state: Record<string, number[]>) {
        recent.clear();
        for (const [user, times] of Object.entries(state)) recent.set(user, times);
      },
    };
  },
});

export default [botFilter];
