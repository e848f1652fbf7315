// The judging template and rules of the seed's compare.py (its PromptTemplate): the messages a
// judge gets for one comparison, and how its reply names a winner.
import type { ChatMessage } from '../rationales/openai.js';

export interface TemplateOptions {
  /** One label per response, in presentation order (the seed's -l, default "12"). */
  labels: string;
  /** The samples' human and assistant prefixes (the seed read them from the samples' config). */
  humanPrefix: string;
  assistantPrefix: string;
}

/** The seed's defaults (Tulu format). */
export const DEFAULT_PREFIXES = { humanPrefix: '\n<|user|>\n', assistantPrefix: '\n<|assistant|>\n' } as const;

/** A response cut after its last sentence end (., ! or ?); one with none is kept whole. */
export function cleanResponse(response: string): string {
  let last = -1;
  for (let i = 0; i < response.length; i++) if ('.!?'.includes(response[i]!)) last = i;
  return last >= 0 ? response.slice(0, last + 1) : response;
}

/**
 * The conversation before the assistant's turn: the seed cut the history at the last assistant
 * prefix. A history without one (rpo's samples hold the raw prompt) is kept whole, where the
 * seed's rfind of -1 would have cut its last character.
 */
export function historyOf(history: string, assistantPrefix: string): string {
  const at = history.lastIndexOf(assistantPrefix);
  return (at >= 0 ? history.slice(0, at) : history).trim();
}

/** The two user messages of one comparison, the responses in the given order. */
export function judgeMessages(history: string, responses: readonly string[], o: TemplateOptions): ChatMessage[] {
  if (o.labels.length < responses.length) throw new Error(`--labels ${JSON.stringify(o.labels)} has fewer labels than the ${responses.length} responses`);
  const human = o.humanPrefix.trim();
  const assistant = o.assistantPrefix.trim();
  const prompt = [`${assistant} can now choose from different responses.`];
  responses.forEach((r, i) => {
    const label = o.labels[i]!;
    prompt.push(`Response ${label}: ${cleanResponse(r)}\nEND OF RESPONSE ${label}`);
  });
  prompt.push('Between these two responses, which response is more helpful, harmless, and concise? Pick one.');
  return [
    { role: 'user', content: `Here is a conversation between ${human} and ${assistant}.\n\n` + historyOf(history, o.assistantPrefix) },
    { role: 'user', content: prompt.join('\n\n') },
  ];
}

/**
 * The position (0-based) the judge chose: the character after the first "response " in its
 * reply (any case), looked up in the labels. A reply naming no response, or a label that is not
 * one of them, chooses neither (null), as the seed's rules.
 */
export function parseChoice(reply: string, labels: string): number | null {
  const m = /response (.)/i.exec(reply);
  if (!m) return null;
  const idx = labels.indexOf(m[1]!);
  return idx >= 0 ? idx : null;
}
