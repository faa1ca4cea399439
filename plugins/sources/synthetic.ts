/**
 * `synthetic`: seeded shoppers with latent purchase intent and a churn hazard (see shoppers.ts), as
 * fast as possible or at a steady rate, for a number of events or without end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defineSource, inTurns, partsOf, type ClickEvent, type SourcePosition } from 'tributary';
import { ShopperWorld, type FlatShopperWorldState, type ShopperWorldState } from './shoppers.js';

export interface SyntheticSourceConfig {
  seed: number;
  users: number;
  events: number;
  rate: number;
  items: number;
  categories: number;
  start: string;
  session_ids: boolean;
  clock: 'simulated' | 'wall';
}

export default defineSource<SyntheticSourceConfig>({
  name: 'synthetic',
  emits: ['event'],
  status: 'stable',
  summary: 'Generates a deterministic clickstream of simulated shoppers (view, cart, remove_from_cart, purchase).',
  description:
    'Each shopper has a latent purchase propensity and a churn hazard; sessions follow one another with gaps of ' +
    'days, and a churned shopper is replaced by a new one so `users` stay active. Events come out in event-time ' +
    'order. The same `seed` gives the same events.',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      seed: { type: 'integer', default: 42, description: 'Seed of the generator: the same seed gives the same stream.' },
      users: { type: 'integer', minimum: 1, default: 1000, description: 'Shoppers active at any time.' },
      events: { type: 'integer', minimum: 0, default: 100000, description: 'Events to generate; 0 for no end.' },
      rate: { type: 'number', minimum: 0, default: 0, description: 'Events per second of wall time; 0 for as fast as possible.' },
      items: { type: 'integer', minimum: 1, default: 5000, description: 'Items in the catalogue.' },
      categories: { type: 'integer', minimum: 1, default: 50, description: 'Item categories.' },
      start: { type: 'string', format: 'date-time', default: '2024-01-01T00:00:00Z', description: 'Start of the simulated timeline: the first shoppers\' first sessions begin at random within the day after it, so the first event comes that much later (about a minute and a half with 1,000 `users`, hours with a few). A date and time with its UTC offset (RFC 3339), e.g. `2024-01-01T00:00:00Z`. Not with `clock: wall`, whose events carry the wall clock.' },
      session_ids: { type: 'boolean', default: false, description: "Attach the generator's own session ids (most data sets have none)." },
      clock: {
        enum: ['simulated', 'wall'],
        default: 'simulated',
        description:
          '`simulated`: event times follow the shoppers\' own timeline (days pass in seconds). `wall`: each event is stamped with the wall clock when it is emitted (order kept), for soak tests of a live daemon where event time should track real time.',
      },
    },
  },
  examples: [{ users: 1000, events: 100000 }, { users: 200, events: 0, rate: 500 }],
  create(config, context) {
    let emitted = 0;
    let resumeAt = 0;
    // The settings the stream depends on (not events, rate, clock): a saved world fits only the same.
    const stream = JSON.stringify([config.seed, config.users, config.items, config.categories, config.start, config.session_ids]);
    let resumeFrom: ShopperWorldState | FlatShopperWorldState | undefined;
    /** The world once it stands where the stream goes on; until then the position is the one resumed from. */
    let current: ShopperWorld | undefined;
    return {
      async *read(): AsyncGenerator<ClickEvent[]> {
        const settings = {
          seed: config.seed,
          users: config.users,
          items: config.items,
          categories: config.categories,
          start: Date.parse(config.start),
          sessionIds: config.session_ids,
        };
        // In parts, the event loop turning (/healthz answered): 20,000 shoppers made or restored in one
        // go held it 0.15-0.2 s, 40,000 about 0.3 s.
        let world: ShopperWorld | undefined;
        if (resumeFrom) {
          try {
            world = await inTurns(ShopperWorld.build(settings, resumeFrom));
          } catch (error) {
            context.logger.warn({ err: error, emitted: resumeAt }, 'synthetic: the saved world cannot be read; replaying the stream to its position');
          }
        }
        if (!world) {
          world = await inTurns(ShopperWorld.build(settings));
          // A position without the world's state (from before it was saved, or of other settings) is
          // replayed to, in parts: a million events in one go held the event loop for seconds (/healthz
          // unanswered), and the replay's cost grows with every event the stream ever gave.
          const replayed = world;
          await inTurns(partsOf(resumeAt, (from, to) => {
            for (let i = from; i < to; i++) replayed.next();
          }));
        }
        resumeFrom = undefined;
        current = world;
        const limit = config.events === 0 ? Infinity : config.events;
        const batchSize = config.rate > 0 ? Math.max(1, Math.min(context.batchSize, Math.ceil(config.rate / 50))) : context.batchSize;
        const began = Date.now();
        const startCount = emitted;
        while (emitted < limit) {
          const size = Math.min(batchSize, limit - emitted);
          const batch: ClickEvent[] = new Array(size);
          for (let i = 0; i < size; i++) batch[i] = world.next();
          if (config.clock === 'wall') {
            const now = Date.now();
            for (let i = 0; i < size; i++) batch[i]!.time = now;
          }
          emitted += size;
          yield batch;
          if (config.rate > 0) {
            const due = began + ((emitted - startCount) / config.rate) * 1000;
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait);
          }
        }
      },
      position(): SourcePosition {
        // The world's state costs O(users) to save and restore; the count alone costs a replay of it all.
        if (current) return { emitted, stream, world: current.state() };
        // Not started yet, or replaying: the position resumed from (a checkpoint may be taken meanwhile).
        return resumeFrom ? { emitted, stream, world: resumeFrom } : { emitted };
      },
      seek(position) {
        resumeAt = Number(position.emitted ?? 0);
        emitted = resumeAt;
        resumeFrom = position.stream === stream && position.world ? (position.world as ShopperWorldState | FlatShopperWorldState) : undefined;
      },
    };
  },
});
