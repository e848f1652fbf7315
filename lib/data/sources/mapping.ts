// Record → PreferenceRow / PromptRow field extraction, with errors that name the file, the
// line or row, and the field.
import { DataFileError, describeType, isPlainObject, recordLocation, type SourceRecord } from '../read/index.js';
import type { PreferenceRow } from '../types.js';

export type PreferenceField = 'prompt' | 'chosen' | 'rejected' | 'rationale';
/** Our field → the source's column name. */
export type ColumnMap = Partial<Record<PreferenceField, string>>;

/** A record with the name its file is shown under. */
export interface Located {
  file: string;
  rec: SourceRecord;
}

/** What a mapper returns: a row without its id (the loader numbers the rows). */
export type MappedRow = Omit<PreferenceRow, 'id'>;
/** A record's row, or null when the source's rules leave the record out (SHP's score-ratio filter). */
export type RecordMapper = (at: Located) => MappedRow | null;

function fieldError(at: Located, field: string, column: string, what: string): DataFileError {
  const col = column === field ? '' : ` (column "${column}")`;
  return new DataFileError(`${recordLocation(at.file, at.rec)}: field "${field}"${col} ${what}`, at.file, {
    row: at.rec.row,
    line: at.rec.line,
  });
}

/** The string in `column`; an error naming file, row and field when it is missing or not a string. */
export function requireString(at: Located, column: string, field: string = column): string {
  const data = at.rec.data;
  if (!(column in data) || data[column] === undefined) throw fieldError(at, field, column, 'is missing');
  const v = data[column];
  if (typeof v !== 'string') throw fieldError(at, field, column, `is ${describeType(v)}, not a string`);
  return v;
}

/** The number in `column` (an integer column may arrive as a bigint); an error naming file, row and field otherwise. */
export function requireNumber(at: Located, column: string, field: string = column): number {
  const data = at.rec.data;
  if (!(column in data) || data[column] === undefined || data[column] === null) throw fieldError(at, field, column, 'is missing');
  const v = data[column];
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'number') throw fieldError(at, field, column, `is ${describeType(v)}, not a number`);
  return v;
}

/** The number in `column`, or null when absent or null. */
export function optionalNumber(at: Located, column: string, field: string = column): number | null {
  const v = at.rec.data[column];
  if (v === undefined || v === null) return null;
  return requireNumber(at, column, field);
}

/** The string in `column`, or undefined when absent or null; an error when it is anything else. */
export function optionalString(at: Located, column: string, field: string = column): string | undefined {
  const v = at.rec.data[column];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw fieldError(at, field, column, `is ${describeType(v)}, not a string`);
  return v;
}

/**
 * The content of the last assistant message of a message list ([{role, content}, ...], as
 * ultrafeedback_binarized stores chosen / rejected). HALOs takes `[-1]['content']`; on that data the
 * last message is the assistant's, and elsewhere the last assistant message is what is meant.
 */
export function lastAssistantContent(at: Located, column: string, field: string = column): string {
  const v = at.rec.data[column];
  if (v === undefined || v === null) throw fieldError(at, field, column, 'is missing');
  if (!Array.isArray(v)) throw fieldError(at, field, column, `is ${describeType(v)}, not a list of messages`);
  for (let i = v.length - 1; i >= 0; i--) {
    const m: unknown = v[i];
    if (isPlainObject(m) && m['role'] === 'assistant') {
      if (typeof m['content'] !== 'string') {
        throw fieldError(at, field, column, `has an assistant message whose content is ${describeType(m['content'])}, not a string`);
      }
      return m['content'];
    }
  }
  throw fieldError(at, field, column, `has no assistant message (${v.length} messages)`);
}

/** A response: a string, or a message list (its last assistant message). */
export function responseText(at: Located, column: string, field: string): string {
  return Array.isArray(at.rec.data[column]) ? lastAssistantContent(at, column, field) : requireString(at, column, field);
}

// The seed's text cleaning lives with formatting, where it is applied (after the prefixes are
// added, as the seed cleaned the formatted prompt); re-exported here for earlier imports.
export { removeExtraSpaces } from '../format/index.js';

/** How Intel/orca_dpo_pairs' system prompt and question are joined into one prompt (when the system prompt is not empty). */
export const ORCA_SYSTEM_SEPARATOR = '\n\n';

/** Orca's prompt: `system + "\n\n" + question`, or the question alone when the system prompt is empty. */
export function orcaPrompt(system: string | undefined, question: string): string {
  return system !== undefined && system.trim().length > 0 ? `${system}${ORCA_SYSTEM_SEPARATOR}${question}` : question;
}

/** Intel/orca_dpo_pairs: system, question, chosen, rejected. */
export const mapOrca: RecordMapper = (at) => ({
  prompt: orcaPrompt(optionalString(at, 'system'), requireString(at, 'question')),
  chosen: requireString(at, 'chosen'),
  rejected: requireString(at, 'rejected'),
});

/** redsgnaoh/orcaratgen, redsgnaoh/orcaratspec: prompt, chosen, rejected, rationale (all required). */
export const mapRationale: RecordMapper = (at) => ({
  prompt: requireString(at, 'prompt'),
  chosen: requireString(at, 'chosen'),
  rejected: requireString(at, 'rejected'),
  rationale: requireString(at, 'rationale'),
});

/** HuggingFaceH4/ultrafeedback_binarized: prompt; chosen / rejected are message lists. */
export const mapUltrabin: RecordMapper = (at) => ({
  prompt: requireString(at, 'prompt'),
  chosen: lastAssistantContent(at, 'chosen'),
  rejected: lastAssistantContent(at, 'rejected'),
});

/**
 * Any file in the prompt / chosen / rejected [/ rationale] shape, with an optional column mapping.
 * Without a mapping: `prompt`, or Orca's `system` + `question` when there is no `prompt` column;
 * chosen / rejected may be strings or message lists; `rationale` is used when present. A mapped
 * rationale column is required.
 */
export function genericMapper(columns: ColumnMap = {}): RecordMapper {
  return (at) => {
    const data = at.rec.data;
    let prompt: string;
    if (columns.prompt !== undefined) prompt = requireString(at, columns.prompt, 'prompt');
    else if (!('prompt' in data) && 'question' in data) prompt = orcaPrompt(optionalString(at, 'system'), requireString(at, 'question'));
    else prompt = requireString(at, 'prompt');
    const row: MappedRow = {
      prompt,
      chosen: responseText(at, columns.chosen ?? 'chosen', 'chosen'),
      rejected: responseText(at, columns.rejected ?? 'rejected', 'rejected'),
    };
    const rationale =
      columns.rationale !== undefined ? requireString(at, columns.rationale, 'rationale') : optionalString(at, 'rationale');
    if (rationale !== undefined) row.rationale = rationale;
    return row;
  };
}

/** The column a prompt-only file keeps its prompts in: the mapped one, else prompt / instruction / question. */
export function promptColumnOf(data: Record<string, unknown>, columns: ColumnMap = {}): string {
  if (columns.prompt !== undefined) return columns.prompt;
  for (const c of ['prompt', 'instruction', 'question']) if (c in data) return c;
  return 'prompt';
}
