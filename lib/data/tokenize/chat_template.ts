// Rendering a model's chat template (@huggingface/jinja) under bounds. The template is code from
// the model's files: `{% for i in range(1000000000) %}x{% endfor %}` would build a billion-element
// list, then a string past V8's longest, and V8 aborts the process (exit 133) with no message.
// Here range() is bounded, and so are the interpreter's steps and the characters they produce;
// past a bound the render throws a TemplateLimitError, which the caller reports naming the file.
import { Environment, Interpreter, type Template } from '@huggingface/jinja';

/**
 * The bounds of one render. Qwen3's template takes under 100 steps a message (a 100-message
 * conversation: under 10,000); the interpreter runs ~50,000 to 500,000 steps a second, so the
 * step bound stops a runaway template within seconds.
 */
export interface TemplateLimits {
  /** Expressions and statements evaluated. */
  steps: number;
  /** Characters of the strings they evaluate to, summed (nested blocks count at each level). */
  chars: number;
  /** Elements one range() may make. */
  range: number;
}

export const DEFAULT_TEMPLATE_LIMITS: TemplateLimits = { steps: 1_000_000, chars: 256 * 1024 * 1024, range: 100_000 };

export class TemplateLimitError extends Error {
  override name = 'TemplateLimitError';
}

interface RuntimeValue {
  type: string;
  value?: unknown;
}
type Evaluate = (this: Interpreter, statement: unknown, environment: unknown) => RuntimeValue;

/** What the render in progress has left (renders are synchronous, so one at a time). */
let budget: { steps: number; chars: number; limits: TemplateLimits } | null = null;

// The interpreter's one entry for every node; counting there bounds loops, macros and filters alike.
const proto = Interpreter.prototype as unknown as { evaluate: Evaluate };
const evaluate = proto.evaluate;
proto.evaluate = function boundedEvaluate(statement, environment) {
  const b = budget;
  if (b && --b.steps < 0) throw new TemplateLimitError(`the template ran past ${b.limits.steps.toLocaleString('en-US')} steps`);
  const value = evaluate.call(this, statement, environment);
  if (b && value.type === 'StringValue' && typeof value.value === 'string') {
    b.chars -= value.value.length;
    if (b.chars < 0) throw new TemplateLimitError(`the template produced more than ${b.limits.chars.toLocaleString('en-US')} characters`);
  }
  return value;
};

// The library declares its globals with Environment.set when a render starts; during a bounded
// render, range() is declared as the bounded one (a template variable of that name would be
// refused as a redeclaration, so this is the one place to put it).
const envProto = Environment.prototype as unknown as { set: (name: string, value: unknown) => unknown };
const set = envProto.set;
envProto.set = function boundedSet(name, value) {
  return set.call(this, name, budget && name === 'range' ? boundedRange(budget.limits.range) : value);
};

/** Python's range(), refusing to make more than `max` elements. */
function boundedRange(max: number): (start: number, stop?: number, step?: number) => number[] {
  return (start, stop, step = 1) => {
    const [a, b] = stop === undefined ? [0, start] : [start, stop];
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((b - a) / step));
    if (!(n <= max)) throw new TemplateLimitError(`range() of ${n.toLocaleString('en-US')} elements (at most ${max.toLocaleString('en-US')})`);
    return Array.from({ length: n }, (_, i) => a + i * step);
  };
}

/** template.render(variables) within `limits`; throws TemplateLimitError past one. */
export function renderBounded(template: Template, variables: Record<string, unknown>, limits: TemplateLimits = DEFAULT_TEMPLATE_LIMITS): string {
  if (budget) throw new Error('renderBounded: renders do not nest');
  budget = { steps: limits.steps, chars: limits.chars, limits };
  try {
    return template.render(variables);
  } finally {
    budget = null;
  }
}
