/**
 * Test harness for the operators of this folder: builds operators from their specs (defaults filled
 * from the schema, as the loader does), pushes elements through a chain of them synchronously, and
 * snapshots a chain mid-stream. Used by the tests and the bench; not a plugin.
 */
import { Subject } from 'rxjs';
import { composeOperators, watermark, type ClickEvent, type Element, type JsonSchema, type Operator, type OperatorPlugin, type PluginContext } from 'tributary';

/** The config with the schema's top-level defaults filled in. */
export function withDefaults<C>(plugin: OperatorPlugin<C>, config: Partial<C>): C {
  const properties = (plugin.config.properties ?? {}) as Record<string, JsonSchema>;
  const filled: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(properties)) if (schema.default !== undefined) filled[name] = structuredClone(schema.default);
  return { ...filled, ...config } as C;
}

export interface Stage {
  plugin: OperatorPlugin<never>;
  config: Record<string, unknown>;
}

export function stage<C>(plugin: OperatorPlugin<C>, config: Partial<C> = {}): Stage {
  return { plugin: plugin as unknown as OperatorPlugin<never>, config: config as Record<string, unknown> };
}

/** A running chain of operators: push elements, collect the output, snapshot or end it. */
export class Chain {
  readonly operators: Operator[];
  readonly output: Element[] = [];
  private readonly input = new Subject<Element>();
  private readonly subscription;

  private constructor(operators: Operator[], sink?: (element: Element) => void) {
    this.operators = operators;
    // Fused as the runtime runs them.
    this.subscription = composeOperators(operators, this.input).subscribe({ next: sink ?? ((element) => void this.output.push(element)) });
  }

  static async build(stages: readonly Stage[], context: PluginContext, restore?: unknown[], sink?: (element: Element) => void): Promise<Chain> {
    const operators: Operator[] = [];
    for (const [k, { plugin, config }] of stages.entries()) {
      const operator = await plugin.create(withDefaults(plugin, config as never), context);
      await operator.open?.();
      if (restore?.[k] != null && operator.restore) await operator.restore(restore[k]);
      operators.push(operator);
    }
    return new Chain(operators, sink);
  }

  push(elements: Iterable<Element>): this {
    for (const element of elements) this.input.next(element);
    return this;
  }

  /** Each operator's snapshot, taken at this instant, through JSON as a checkpoint would store it. */
  async snapshot(): Promise<unknown[]> {
    const taken = this.operators.map((operator) => operator.snapshot?.());
    return JSON.parse(JSON.stringify(await Promise.all(taken))) as unknown[];
  }

  end(): Element[] {
    this.input.complete();
    this.subscription.unsubscribe();
    return this.output;
  }
}

/** The operators' tests' time line: minutes from T0 (2024-01-01, a Monday, UTC). */
export const T0 = Date.UTC(2024, 0, 1);
export const MIN = 60_000;

/** An event of `userId` at `minute`. */
export function ev(userId: string, minute: number, type = 'view', extra: Partial<ClickEvent> = {}): ClickEvent {
  return { kind: 'event', userId, time: T0 + minute * MIN, type, ...extra };
}

/** A watermark at `minute`. */
export const wm = (minute: number): Element => watermark(T0 + minute * MIN);
