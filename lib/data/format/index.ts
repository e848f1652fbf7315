// Prompt, response and rationale-context formatting (DESIGN.md, "Semantics"). Pure functions of
// their inputs; the chat-template mode takes the tokenizer's applyChatTemplate.
//
// template: prefixes (the seed's formatting, the default)
//   prompt   = human_prefix + prompt + human_suffix + assistant_prefix
//   response = text + assistant_suffix                      (EOS is added at tokenization)
//   rationale context = human_prefix + RATIONALE_QUESTION(prompt, chosen, rejected)
//                       + human_suffix + assistant_prefix, target = rationale + assistant_suffix
//
// template: chat (the tokenizer's chat template)
//   prompt   = chat_template([{role: user, content: prompt}], add_generation_prompt=true)
//   response = text                                         (EOS is added at tokenization)
//   rationale context = chat_template([{role: user, content: RATIONALE_QUESTION(...)}], ...),
//   target = rationale
//   The four prefix/suffix strings are not used in this mode: the template owns the turn format,
//   and the tokenizer's EOS token ends the assistant turn (Qwen's <|im_end|>, Zephyr's </s>).
//   Rendering the assistant turn through the template instead would make the response's tokens
//   depend on template details (Qwen3's <think> blocks, trailing newlines after the end-of-turn
//   token) that differ between templates; text + EOS is what TRL's DPO trainer trains on too.
import type { PreferenceRow } from '../types.js';
import type { ChatMessage, ChatTemplateOptions } from '../tokenize/index.js';

export type TemplateMode = 'prefixes' | 'chat';

/** The config keys formatting reads (the resolved config's own names). */
export interface FormatConfig {
  human_prefix: string;
  human_suffix: string;
  assistant_prefix: string;
  assistant_suffix: string;
  /** Default 'prefixes'. */
  template?: TemplateMode;
}

/** What chat mode needs of a tokenizer. */
export interface ChatTemplater {
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}

function needChat(cfg: FormatConfig, chat: ChatTemplater | undefined): ChatTemplater | null {
  if ((cfg.template ?? 'prefixes') !== 'chat') return null;
  if (!chat) throw new Error('template: chat needs the tokenizer (its chat template) to format prompts');
  return chat;
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

/** The text before the response: the formatted prompt. */
export function formatPrompt(prompt: string, cfg: FormatConfig, chat?: ChatTemplater): string {
  const tpl = needChat(cfg, chat);
  if (tpl) return tpl.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true });
  return cfg.human_prefix + prompt + cfg.human_suffix + cfg.assistant_prefix;
}

/** The response text (without EOS: tokenization adds it). */
export function formatResponse(text: string, cfg: FormatConfig): string {
  return (cfg.template ?? 'prefixes') === 'chat' ? text : text + cfg.assistant_suffix;
}

/** The rationale context: the prompt the rationale is the response to. */
export function rationaleContext(row: Pick<PreferenceRow, 'prompt' | 'chosen' | 'rejected'>, cfg: FormatConfig, chat?: ChatTemplater): string {
  const question = rationaleQuestion(row.prompt, row.chosen, row.rejected);
  const tpl = needChat(cfg, chat);
  if (tpl) return tpl.applyChatTemplate([{ role: 'user', content: question }], { addGenerationPrompt: true });
  return cfg.human_prefix + question + cfg.human_suffix + cfg.assistant_prefix;
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
  const prompt = formatPrompt(row.prompt, cfg, chat);
  const out: FormattedExample = {
    id: row.id,
    chosen: { prompt, response: formatResponse(row.chosen, cfg) },
    rejected: { prompt, response: formatResponse(row.rejected, cfg) },
  };
  if (row.rationale !== undefined) {
    out.rationale = { prompt: rationaleContext(row, cfg, chat), response: rationaleTarget(row.rationale, cfg) };
  }
  return out;
}
