// The prompts that ask a generator why the chosen response of a pair was preferred.
//
// Two built-in styles, written for rpo in the spirit of the two released rationale datasets
// (orcaratgen: a short general reason; orcaratspec: specific points from both responses), and
// user templates: any Jinja file (rendered with @huggingface/jinja) using the variables
// `prompt`, `chosen` and `rejected`.
//
// The built-ins name the responses the way RDPO's rationale context does at training time
// (docs/design.md: "Response above: <chosen> or Response below: <rejected>"), and say which one was
// preferred, so the generated text refers to "the response above" (the preferred, chosen one)
// and "the response below" (the rejected one) exactly as the context it is trained under.
// The check for rationales that argue for the rejected response (filters.ts) relies on it.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { Template } from '@huggingface/jinja';
import { renderBounded } from '../data/tokenize/chat_template.js';

export const BUILTIN_STYLES = ['general', 'detailed'] as const;
export type BuiltinStyle = (typeof BUILTIN_STYLES)[number];

const PAIR = `{{ prompt }}

Response above (the preferred one):
{{ chosen }}

Response below (the rejected one):
{{ rejected }}`;

/** A short, high-level reason (orcaratgen-like). */
export const GENERAL_TEMPLATE = `Below are a prompt and two responses to it. People who compared the two preferred the response above to the response below.

Prompt:
${PAIR}

In two or three sentences, explain at a high level why the response above is preferred: what it does better for this prompt than the response below. Call them "the response above" and "the response below". Explain the given preference; do not argue for the response below. Write only the explanation, with no preamble and no heading.`;

/** Specific points from both responses (orcaratspec-like). */
export const DETAILED_TEMPLATE = `Below are a prompt and two responses to it. People who compared the two preferred the response above to the response below.

Prompt:
${PAIR}

Explain specifically why the response above is preferred. Point to concrete content of both responses: what the response above gets right (name the exact facts, steps, numbers, wording or format it uses) and what the response below gets wrong, leaves out or adds that it should not. Compare them on correctness, on how closely each follows the prompt's instructions, on completeness and on clarity, as far as each applies. Call them "the response above" and "the response below". Explain the given preference; do not argue for the response below. Write one short paragraph of at most 150 words, with no preamble, no heading and no list.`;

export const BUILTIN_TEMPLATES: Readonly<Record<BuiltinStyle, string>> = {
  general: GENERAL_TEMPLATE,
  detailed: DETAILED_TEMPLATE,
};

/** The fields a template sees. */
export interface PairFields {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** A template ready to render, and where it came from (recorded in the sidecar). */
export interface RationaleTemplate {
  /** 'general', 'detailed', or the user file's absolute path. */
  style: string;
  /** The Jinja source. */
  source: string;
  render(fields: PairFields): string;
}

/** A user template that cannot be used (missing file, syntax error, missing variables). */
export class TemplateError extends Error {
  override name = 'TemplateError';
}

const SENTINEL = {
  prompt: '\u0001rpo-prompt\u0001',
  chosen: '\u0001rpo-chosen\u0001',
  rejected: '\u0001rpo-rejected\u0001',
} as const;

/**
 * Compiles a Jinja template; checks it renders and that it shows the generator both responses
 * (a template without `chosen` or `rejected` cannot ask why one beat the other). Returns the
 * variables it does not use (a template may leave out `prompt`; the caller warns).
 */
export function compileTemplate(source: string, style: string): { template: RationaleTemplate; unused: string[] } {
  let compiled: Template;
  try {
    compiled = new Template(source);
  } catch (err) {
    throw new TemplateError(`template ${style} does not parse: ${(err as Error).message}`);
  }
  const render = (fields: PairFields): string => {
    try {
      return renderBounded(compiled, { prompt: fields.prompt, chosen: fields.chosen, rejected: fields.rejected });
    } catch (err) {
      throw new TemplateError(`template ${style} failed to render: ${(err as Error).message}`);
    }
  };
  // A variable is used when changing its value changes the text (filters like `upper` included).
  const probe = render(SENTINEL);
  const unused = (Object.keys(SENTINEL) as (keyof typeof SENTINEL)[]).filter(
    (k) => render({ ...SENTINEL, [k]: `${SENTINEL[k]} (another value)` }) === probe,
  );
  const missing = unused.filter((k) => k !== 'prompt');
  if (missing.length > 0) {
    throw new TemplateError(
      `template ${style} never shows ${missing.map((m) => `{{ ${m} }}`).join(' or ')}: a rationale template gets ` +
        `the variables prompt, chosen (the preferred response) and rejected, and must show both responses`,
    );
  }
  if (probe.trim().length === 0) throw new TemplateError(`template ${style} renders to nothing`);
  return { template: { style, source, render }, unused };
}

/** `general`, `detailed`, or a path to a Jinja file. */
export function loadTemplate(style: string): { template: RationaleTemplate; unused: string[] } {
  if ((BUILTIN_STYLES as readonly string[]).includes(style)) {
    return compileTemplate(BUILTIN_TEMPLATES[style as BuiltinStyle], style);
  }
  const file = path.resolve(style);
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TemplateError(
      code === 'ENOENT'
        ? `--style ${style}: not a built-in style (${BUILTIN_STYLES.join(', ')}) and no such template file ${file}`
        : `--style ${style}: cannot read ${file}: ${(err as Error).message}`,
    );
  }
  return compileTemplate(source, file);
}
