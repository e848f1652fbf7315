// Which generated rationales are kept. Every rule has a name; the sidecar counts each one.
//
//   empty             nothing but whitespace
//   too_long          more than --max-rationale-chars characters (after trimming)
//   truncated         the generation stopped at the token limit (engine finish reason 'length',
//                     OpenAI finish_reason "length"); kept with --keep-truncated
//   prefers_rejected  the text argues for the rejected response (prefersRejected below)
//   prompt_too_long   (local generators) the rendered request does not fit the model's context
//
// Rows the generator failed on after its retries are not filtered rows: they are "failed" and
// listed by id with their error.

export const FILTER_REASONS = ['empty', 'too_long', 'truncated', 'prefers_rejected', 'prompt_too_long'] as const;
export type FilterReason = (typeof FILTER_REASONS)[number];

export interface FilterOptions {
  maxChars: number;
  keepTruncated: boolean;
}

/** The reason a generated text is dropped, or null to keep it. `text` is already trimmed. */
export function filterReason(text: string, finish: 'stop' | 'length', opts: FilterOptions): FilterReason | null {
  if (text.length === 0) return 'empty';
  if (finish === 'length' && !opts.keepTruncated) return 'truncated';
  if (text.length > opts.maxChars) return 'too_long';
  if (prefersRejected(text)) return 'prefers_rejected';
  return null;
}

// ---- the "argues for the rejected response" check --------------------------------------------
//
// The built-in prompts call the preferred response "the response above" and the rejected one
// "the response below" (the names RDPO's rationale context uses). A rationale is flagged when,
// within one sentence, it
//   1. says the rejected one is better:   <rejected> is/was/seems [clearly|more|...] better /
//      preferable / preferred / superior / stronger / more accurate|helpful|correct|... / the best;
//   2. says the rejected one should win:  <rejected> should/must be preferred|chosen;
//   3. picks it:                          prefer / choose / pick / favor / recommend <rejected>;
//   4. says the preferred one is worse:   <preferred> is/was [...] worse / inferior / weaker /
//      less accurate|helpful|... / incorrect / wrong / not as good / not better;
// where <rejected> is "the response below", "the below response", "the one below", "the second /
// latter / rejected / other / bottom response (answer, reply, one)", "the latter", "response B",
// and <preferred> the same with above / first / former / preferred / chosen / top, "response A".
// A match is ignored when a negation (not, never, n't, no) comes within the three words before it
// ("I would not prefer the response below") or when its sentence opens the clause with a
// concession (while, although, though, whereas, even if, despite, granted: "While the response
// below is more complete, ..."). It is a lexical check: it catches a generator that misread which
// response won, not subtle disagreement.

const NOUN = '(?:response|answer|reply|one|option|completion)';
const REJECTED_REF = [
  `(?:the\\s+)?${NOUN}\\s+below`,
  `(?:the\\s+)?below\\s+${NOUN}`,
  `(?:the\\s+)?(?:second|latter|rejected|other|bottom|lower|less\\s+preferred|dispreferred)\\s+${NOUN}`,
  `the\\s+latter`,
  `(?:response|answer|option)\\s+b\\b`,
].join('|');
const PREFERRED_REF = [
  `(?:the\\s+)?${NOUN}\\s+above`,
  `(?:the\\s+)?above\\s+${NOUN}`,
  `(?:the\\s+)?(?:first|former|preferred|chosen|top|upper)\\s+${NOUN}`,
  `the\\s+former`,
  `(?:response|answer|option)\\s+a\\b`,
].join('|');

const COPULA = '(?:is|was|would\\s+be|seems|seemed|appears|remains|is\\s+actually|is\\s+indeed)';
const ADVERBS = '(?:(?:clearly|slightly|much|far|significantly|somewhat|actually|indeed|overall|definitely|the|a|also|even|arguably|generally)\\s+)*';
const QUALITIES = '(?:accurate|helpful|correct|appropriate|complete|relevant|preferable|suitable|useful|informative|thorough|faithful|precise|aligned)';
const BETTER = `(?:better|preferable|preferred|superior|stronger|best|winner|more\\s+${QUALITIES}|correct\\s+one|right\\s+one)`;
const WORSE = `(?:worse|inferior|weaker|worst|less\\s+${QUALITIES}|incorrect|wrong|not\\s+as\\s+good|not\\s+better|not\\s+preferable)`;

const RULES: readonly RegExp[] = [
  new RegExp(`\\b(?:${REJECTED_REF})\\s+${COPULA}\\s+${ADVERBS}${BETTER}\\b`),
  new RegExp(`\\b(?:${REJECTED_REF})\\s+(?:should|must|ought\\s+to)\\s+be\\s+(?:preferred|chosen|favou?red|selected)\\b`),
  new RegExp(`\\b(?:prefer|prefers|preferred|choose|chooses|pick|picks|favou?r|favou?rs|recommend|recommends)\\s+(?:${REJECTED_REF})\\b`),
  new RegExp(`\\b(?:${PREFERRED_REF})\\s+${COPULA}\\s+${ADVERBS}${WORSE}\\b`),
];

const NEGATION = /\b(?:not|never|no|nobody|neither|nor)\b|n't\b/;
const CONCESSION = /(?:^|[,:(]\s*)(?:while|although|though|whereas|even\s+if|even\s+though|despite|granted)\b/;

/** The sentences of a text, lower-cased, whitespace and quotes normalized. */
function sentences(text: string): string[] {
  const norm = text
    .toLowerCase()
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .replace(/[\u201c\u201d"*_`]/g, ' ')
    .replace(/[ \t]+/g, ' ');
  return norm.split(/(?<=[.!?;])\s+|\n+/).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** True when the rationale argues for the rejected response (see the rules above). */
export function prefersRejected(text: string): boolean {
  for (const s of sentences(text)) {
    for (const rule of RULES) {
      const global = new RegExp(rule.source, 'g');
      for (const m of s.matchAll(global)) {
        const before = s.slice(0, m.index);
        const lastWords = before.split(/\s+/).filter(Boolean).slice(-3).join(' ');
        if (NEGATION.test(lastWords)) continue;
        // A concession earlier in the same clause ("While X is better, ...").
        const clause = before.split(/[;]/).pop() ?? '';
        if (CONCESSION.test(clause) && !/,/.test(clause.slice(clause.search(CONCESSION) + 1))) continue;
        return true;
      }
    }
  }
  return false;
}
