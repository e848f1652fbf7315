// Prompt, response and rationale-context formatting (docs/design.md, "Data"). Pure functions of
// their inputs; the chat-template mode takes the tokenizer's applyChatTemplate.
//
// template: prefixes (the seed's formatting, the default)
//   prompt   = human_prefix + prompt + human_suffix + assistant_prefix
//              (a multi-turn row: each earlier turn as prefix + text + suffix of its role, then
//              assistant_prefix, as the seed's oasst loader builds it)
//   response = text + assistant_suffix                      (EOS is added at tokenization)
//   rationale context (rationale_prompt 'above-below', orcaratgen / orcaratspec and the default)
//            = human_prefix + "Given the prompt: … Response above:"…" or Response below:"…"?\n"
//              + human_suffix + assistant_prefix
//   rationale context (rationale_prompt 'numbered', the seed's orcarat)
//            = human_prefix + "Given the prompt: … Assistant 1:"…" or Assistant 2:"…"?\n
//              Provide a rationale of your answer." + assistant_prefix     (no human_suffix)
//   target   = rationale + assistant_suffix
//   remove_extra_spaces (the seed's Example.remove_extra_spaces, on for every dataset the seed
//   loads): runs of two or more spaces / tabs become one space in the formatted prompt, in every
//   response and in the rationale target, after the prefixes and suffixes are added, as the seed
//   cleaned them; never in the rationale context, which the seed built from the raw row text.
//
// template: chat (the tokenizer's chat template)
//   prompt   = chat_template([{role: user, content: prompt}], add_generation_prompt=true)
//              (a multi-turn row: its turns as user / assistant messages)
//   response = text                                         (EOS is added at tokenization)
//   rationale context = chat_template([{role: user, content: the rationale question}], ...),
//   target = rationale
//   The four prefix/suffix strings are not used in this mode: the template owns the turn format,
//   and the tokenizer's EOS token ends the assistant turn (Qwen's <|im_end|>, Zephyr's </s>).
//   Rendering the assistant turn through the template instead would make the response's tokens
//   depend on template details (Qwen3's <think> blocks, trailing newlines after the end-of-turn
//   token) that differ between templates; text + EOS is what TRL's DPO trainer trains on too.
//   remove_extra_spaces cleans the texts before the template renders them (the template's own
//   whitespace is left as written).
import type { PreferenceRow, Turn } from '../types.js';
import type { ChatMessage, ChatTemplateOptions } from '../tokenize/index.js';

export type TemplateMode = 'prefixes' | 'chat';

/** Which rationale question a dataset's rationales answer (see the top of this file). */
export type RationalePrompt = 'above-below' | 'numbered';
export const RATIONALE_PROMPTS: readonly RationalePrompt[] = ['above-below', 'numbered'];

/** The four turn strings. */
export interface Prefixes {
  human_prefix: string;
  human_suffix: string;
  assistant_prefix: string;
  assistant_suffix: string;
}

/** The seed's active formatting (its config/config.yaml): Llama-3's header tokens. rpo's default. */
export const SEED_PREFIXES: Readonly<Prefixes> = {
  human_prefix: '<|start_header_id|>user<|end_header_id|>',
  human_suffix: '<|eot_id|>',
  assistant_prefix: '<|start_header_id|>assistant<|end_header_id|>',
  assistant_suffix: '<|eot_id|>',
};

/** HALOs' formatting (commented out in the seed's config, and rpo's default before 0.2). */
export const HALOS_PREFIXES: Readonly<Prefixes> = {
  human_prefix: '\n<|user|>\n',
  human_suffix: '',
  assistant_prefix: '\n<|assistant|>\n',
  assistant_suffix: '',
};

/** The config keys formatting reads (the resolved config's own names). */
export interface FormatConfig extends Prefixes {
  /** Default 'prefixes'. */
  template?: TemplateMode;
  /** The seed's text cleaning (see the top of this file). Default false. */
  remove_extra_spaces?: boolean;
  /** Default 'above-below'. */
  rationale_prompt?: RationalePrompt;
}

/** What chat mode needs of a tokenizer. */
export interface ChatTemplater {
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}

/**
 * The seed's `Example.remove_extra_spaces`: runs of two or more spaces / tabs become one space
 * (re.sub(r'[ \t]{2,}', ' ', x)). Newlines are left alone.
 */
export function removeExtraSpaces(text: string): string {
  return text.replace(/[ \t]{2,}/g, ' ');
}

function isChat(cfg: FormatConfig): boolean {
  return (cfg.template ?? 'prefixes') === 'chat';
}

function needChat(cfg: FormatConfig, chat: ChatTemplater | undefined): ChatTemplater | null {
  if (!isChat(cfg)) return null;
  if (!chat) throw new Error('template: chat needs the tokenizer (its chat template) to format prompts');
  return chat;
}

function cleaner(cfg: FormatConfig): (s: string) => string {
  return cfg.remove_extra_spaces ? removeExtraSpaces : (s) => s;
}

/** The rationale question, between the human prefix/suffix (byte-for-byte the seed's string). */
export function rationaleQuestion(prompt: string, chosen: string, rejected: string): string {
  return (
    'Given the prompt:\n' +
    prompt +
    "\nWhich of the following assistant's response is more preferable and strictly follows with the prompt question?\n" +
    'Response above:"' +
    chosen +
    '"\nor\nResponse below:"' +
    rejected +
    '"?\n'
  );
}

/** The seed's orcarat rationale question (its first form): "Assistant 1 / Assistant 2", then the request. */
export function numberedRationaleQuestion(prompt: string, chosen: string, rejected: string): string {
  return (
    'Given the prompt:\n' +
    prompt +
    "\nWhich of the following assistant's response is more preferable and strictly follows with the prompt question?\n" +
    'Assistant 1:"' +
    chosen +
    '"\nor\nAssistant 2:"' +
    rejected +
    '"?\nProvide a rationale of your answer.'
  );
}

/** Plain text of a conversation ("Human: …\n\nAssistant: …"): a multi-turn row's `prompt`. */
export function turnsText(turns: readonly Turn[]): string {
  return turns.map((t) => `${t.role === 'assistant' ? 'Assistant' : 'Human'}: ${t.content}`).join('\n\n');
}

/**
 * The text before the response: the formatted prompt. With `turns` (a multi-turn row) the
 * conversation is formatted turn by turn and `prompt` is not used.
 */
export function formatPrompt(prompt: string, cfg: FormatConfig, chat?: ChatTemplater, turns?: readonly Turn[]): string {
  const clean = cleaner(cfg);
  const tpl = needChat(cfg, chat);
  if (tpl) {
    const messages = turns ? turns.map((t) => ({ role: t.role, content: clean(t.content) })) : [{ role: 'user', content: clean(prompt) }];
    return tpl.applyChatTemplate(messages, { addGenerationPrompt: true });
  }
  const body = turns
    ? turns.map((t) => (t.role === 'assistant' ? cfg.assistant_prefix + t.content + cfg.assistant_suffix : cfg.human_prefix + t.content + cfg.human_suffix)).join('')
    : cfg.human_prefix + prompt + cfg.human_suffix;
  return clean(body + cfg.assistant_prefix);
}

/** The response text (without EOS: tokenization adds it). */
export function formatResponse(text: string, cfg: FormatConfig): string {
  return cleaner(cfg)(isChat(cfg) ? text : text + cfg.assistant_suffix);
}

/**
 * One prompt/response pair as training formats it: the text before the response and the
 * response text. formatExample's chosen and rejected pairs are exactly this.
 */
export function formatPair(prompt: string, response: string, cfg: FormatConfig, chat?: ChatTemplater, turns?: readonly Turn[]): { prompt: string; response: string } {
  return { prompt: formatPrompt(prompt, cfg, chat, turns), response: formatResponse(response, cfg) };
}

/** The rationale context: the prompt the rationale is the response to (built from the raw row text, never cleaned). */
export function rationaleContext(row: Pick<PreferenceRow, 'prompt' | 'chosen' | 'rejected'>, cfg: FormatConfig, chat?: ChatTemplater): string {
  const numbered = cfg.rationale_prompt === 'numbered';
  const question = (numbered ? numberedRationaleQuestion : rationaleQuestion)(row.prompt, row.chosen, row.rejected);
  const tpl = needChat(cfg, chat);
  if (tpl) return tpl.applyChatTemplate([{ role: 'user', content: question }], { addGenerationPrompt: true });
  return numbered ? cfg.human_prefix + question + cfg.assistant_prefix : cfg.human_prefix + question + cfg.human_suffix + cfg.assistant_prefix;
}

/** The rationale target text (without EOS). */
export function rationaleTarget(rationale: string, cfg: FormatConfig): string {
  return formatResponse(rationale, cfg);
}

/** Prompt/response text pairs of one row: chosen, rejected and (when the row has one) rationale. */
export interface FormattedExample {
  id: string;
  chosen: { prompt: string; response: string };
  rejected: { prompt: string; response: string };
  rationale?: { prompt: string; response: string };
}

export function formatExample(row: PreferenceRow, cfg: FormatConfig, chat?: ChatTemplater): FormattedExample {
  const out: FormattedExample = {
    id: row.id,
    chosen: formatPair(row.prompt, row.chosen, cfg, chat, row.turns),
    rejected: formatPair(row.prompt, row.rejected, cfg, chat, row.turns),
  };
  if (row.rationale !== undefined) {
    out.rationale = { prompt: rationaleContext(row, cfg, chat), response: rationaleTarget(row.rationale, cfg) };
  }
  return out;
}
