/**
 * `session-features`: a block of features at every event, computed from the events of its session
 * up to and including that event (never later ones: no leakage into a purchase prediction).
 * Needs a sessionizer before it. State per open session is dropped when the session's summary passes.
 */
import { defineOperator, recordOperator, type ClickEvent, type Element, type Emit, type PluginContext } from 'tributary';
import { BlockAppender } from './vector.js';

export interface SessionFeaturesConfig {
  utc_offset_minutes: number;
}

/** The block's names, in order; stable across releases (append new ones at the end). */
export const sessionFeatureNames: readonly string[] = Object.freeze([
  's_events',
  's_views',
  's_carts',
  's_removes',
  's_purchases',
  's_distinct_items',
  's_distinct_categories',
  's_duration_s',
  's_since_prev_s',
  's_mean_dwell_s',
  's_view_price_mean',
  's_view_price_std',
  's_view_price_min',
  's_view_price_max',
  's_cart_price_mean',
  's_cart_price_max',
  's_cart_value',
  's_cart_to_view',
  's_price',
  's_repeat_item',
  's_is_view',
  's_is_cart',
  's_is_remove',
  's_is_purchase',
  'hour_sin',
  'hour_cos',
  'dow_sin',
  'dow_cos',
]);

export default defineOperator<SessionFeaturesConfig>({
  name: 'session-features',
  status: 'beta',
  summary: 'Appends per-session features at every event: counts by type, distinct items, dwell, prices, cart value, time of day.',
  description:
    'Computed from the events of the session up to and including the current one, so a feature never sees the future ' +
    `(a purchase prediction made before the purchase does not use it). Names: ${sessionFeatureNames.map((n) => `\`${n}\``).join(', ')}. ` +
    'Times are in seconds; a statistic with no input (e.g. the mean price of viewed items before any view) is 0. ' +
    'Hour of day and day of week are cyclic (sin, cos), in UTC shifted by `utc_offset_minutes`. Records other than ' +
    'events pass through unchanged; an event without a session (no sessionizer before) is dead-lettered.',
  config: {
    type: 'object',
    additionalProperties: false,
    properties: {
      utc_offset_minutes: {
        type: 'integer',
        minimum: -840,
        maximum: 840,
        default: 0,
        description: 'Local time offset from UTC for the hour-of-day and day-of-week features, e.g. 60 for CET.',
      },
    },
  },
  examples: [{}, { utc_offset_minutes: 60 }],
  create(config, context) {
    const state = new SessionFeatureState(config.utc_offset_minutes * 60_000, context);
    return {
      apply: recordOperator(context, () => ({ record: (record, emit) => state.record(record, emit) })),
      snapshot: () => state.snapshot(),
      restore: (saved) => state.restore(saved as SessionFeaturesSnapshot),
    };
  },
});

/** Running aggregates of one session. */
class SessionAggregate {
  views = 0;
  carts = 0;
  removes = 0;
  purchases = 0;
  viewPriceN = 0;
  viewPriceSum = 0;
  viewPriceSumSq = 0;
  viewPriceMin = 0;
  viewPriceMax = 0;
  cartPriceN = 0;
  cartPriceSum = 0;
  cartPriceMax = 0;
  cartValue = 0;
  items = new Set<string>();
  categories = new Set<string>();
}

export interface SessionFeaturesSnapshot {
  version: 1;
  /** [sessionId, numbers (as in SessionAggregate order), items, categories] */
  sessions: [string, number[], string[], string[]][];
}

const numericFields = [
  'views',
  'carts',
  'removes',
  'purchases',
  'viewPriceN',
  'viewPriceSum',
  'viewPriceSumSq',
  'viewPriceMin',
  'viewPriceMax',
  'cartPriceN',
  'cartPriceSum',
  'cartPriceMax',
  'cartValue',
] as const;

const DAY = 86_400_000;
const HOUR_ANGLE = (2 * Math.PI) / DAY;
const DOW_ANGLE = (2 * Math.PI) / 7;

class SessionFeatureState {
  private readonly sessions = new Map<string, SessionAggregate>();
  private readonly block = new BlockAppender(sessionFeatureNames);
  private readonly offset: number;
  private readonly context: PluginContext;

  constructor(offset: number, context: PluginContext) {
    this.offset = offset;
    this.context = context;
  }

  record(record: Element, emit: Emit): void {
    if (record.kind !== 'event') {
      if (record.kind === 'session') this.forget(record as { sessionId?: unknown; replaces?: unknown });
      emit(record);
      return;
    }
    const event = record as ClickEvent;
    const context = event.session;
    if (context === undefined) throw new Error('event has no session: put a sessionizer before session-features');
    let agg = this.sessions.get(context.id);
    if (agg === undefined) {
      agg = new SessionAggregate();
      this.sessions.set(context.id, agg);
    }
    const price = event.price;
    const hasPrice = price !== undefined && Number.isFinite(price);
    const type = event.type;
    let isView = 0;
    let isCart = 0;
    let isRemove = 0;
    let isPurchase = 0;
    if (type === 'view') {
      isView = 1;
      agg.views++;
      if (hasPrice) {
        if (agg.viewPriceN === 0 || price < agg.viewPriceMin) agg.viewPriceMin = price;
        if (agg.viewPriceN === 0 || price > agg.viewPriceMax) agg.viewPriceMax = price;
        agg.viewPriceN++;
        agg.viewPriceSum += price;
        agg.viewPriceSumSq += price * price;
      }
    } else if (type === 'cart') {
      isCart = 1;
      agg.carts++;
      if (hasPrice) {
        if (agg.cartPriceN === 0 || price > agg.cartPriceMax) agg.cartPriceMax = price;
        agg.cartPriceN++;
        agg.cartPriceSum += price;
        agg.cartValue += price;
      }
    } else if (type === 'remove_from_cart') {
      isRemove = 1;
      agg.removes++;
      if (hasPrice) agg.cartValue = Math.max(0, agg.cartValue - price);
    } else if (type === 'purchase') {
      isPurchase = 1;
      agg.purchases++;
    }
    let repeat = 0;
    if (event.itemId !== undefined) {
      if (agg.items.has(event.itemId)) repeat = 1;
      else agg.items.add(event.itemId);
    }
    if (event.category !== undefined) agg.categories.add(event.category);

    const v = this.block.append(event);
    let i = v.length - this.block.width;
    const events = context.position + 1;
    const duration = context.sinceStart / 1000;
    v[i++] = events;
    v[i++] = agg.views;
    v[i++] = agg.carts;
    v[i++] = agg.removes;
    v[i++] = agg.purchases;
    v[i++] = agg.items.size;
    v[i++] = agg.categories.size;
    v[i++] = duration;
    v[i++] = context.sincePrevious / 1000;
    v[i++] = events > 1 ? duration / (events - 1) : 0;
    const n = agg.viewPriceN;
    const mean = n > 0 ? agg.viewPriceSum / n : 0;
    v[i++] = mean;
    v[i++] = n > 1 ? Math.sqrt(Math.max(0, agg.viewPriceSumSq / n - mean * mean)) : 0;
    v[i++] = agg.viewPriceMin;
    v[i++] = agg.viewPriceMax;
    v[i++] = agg.cartPriceN > 0 ? agg.cartPriceSum / agg.cartPriceN : 0;
    v[i++] = agg.cartPriceMax;
    v[i++] = agg.cartValue;
    v[i++] = agg.carts / (agg.views > 0 ? agg.views : 1);
    v[i++] = hasPrice ? price : 0;
    v[i++] = repeat;
    v[i++] = isView;
    v[i++] = isCart;
    v[i++] = isRemove;
    v[i++] = isPurchase;
    const local = event.time + this.offset;
    const dayMs = local - Math.floor(local / DAY) * DAY;
    v[i++] = Math.sin(dayMs * HOUR_ANGLE);
    v[i++] = Math.cos(dayMs * HOUR_ANGLE);
    const dow = (((Math.floor(local / DAY) + 3) % 7) + 7) % 7; // 1970-01-01 was a Thursday; Monday = 0
    v[i++] = Math.sin(dow * DOW_ANGLE);
    v[i] = Math.cos(dow * DOW_ANGLE);
    emit(event);
  }

  /** A session summary means the session closed: its state is no longer needed. */
  private forget(summary: { sessionId?: unknown; replaces?: unknown }): void {
    if (typeof summary.sessionId === 'string') this.sessions.delete(summary.sessionId);
    if (Array.isArray(summary.replaces)) for (const id of summary.replaces) if (typeof id === 'string') this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  snapshot(): SessionFeaturesSnapshot {
    const sessions: SessionFeaturesSnapshot['sessions'] = [];
    for (const [id, agg] of this.sessions) sessions.push([id, numericFields.map((f) => agg[f]), [...agg.items], [...agg.categories]]);
    return { version: 1, sessions };
  }

  restore(saved: SessionFeaturesSnapshot): void {
    if (saved?.version !== 1) throw new Error(`${this.context.label}: unknown session-features snapshot version`);
    this.sessions.clear();
    for (const [id, numbers, items, categories] of saved.sessions) {
      const agg = new SessionAggregate();
      numericFields.forEach((field, k) => (agg[field] = numbers[k]!));
      agg.items = new Set(items);
      agg.categories = new Set(categories);
      this.sessions.set(id, agg);
    }
  }
}
