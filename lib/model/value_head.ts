// value_head.safetensors (loss=ppo's value head beside the policy's weights): its header parsed
// as JSON by the safetensors reader and checked against the head a trainer has, before the
// engine copies the bytes. Any writer's JSON spacing is valid (Python's json.dumps writes
// `"dtype": "F32"`); what matters is the names, dtypes, shapes and byte ranges.
import { readSafetensorsHeader } from './safetensors.js';

export const VALUE_HEAD_FILE = 'value_head.safetensors';

/** The value head's tensors for hidden size h: the seed's summary.{0,3,6} linears. */
export function valueHeadShapes(hidden: number): ReadonlyArray<readonly [string, readonly number[]]> {
  return [
    ['summary.0.weight', [hidden, hidden]], ['summary.0.bias', [hidden]],
    ['summary.3.weight', [hidden, hidden]], ['summary.3.bias', [hidden]],
    ['summary.6.weight', [1, hidden]], ['summary.6.bias', [1]],
  ];
}

/**
 * Throws, naming the file and tensor, unless `file` holds a value head as F32, for hidden size
 * `hidden` (null: shapes not checked here; a resume checks the head's optimizer state first, and
 * the engine then the shapes, so that a checkpoint of another model is named by its state file).
 */
export function checkValueHeadFile(file: string, hidden: number | null): void {
  const header = readSafetensorsHeader(file);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  for (const [name, shape] of valueHeadShapes(hidden ?? 1)) {
    const t = byName.get(name);
    if (!t) throw new Error(`${file}: tensor "${name}" is missing (a value head has ${valueHeadShapes(1).map(([n]) => n).join(', ')})`);
    if (t.dtype !== 'F32') throw new Error(`${file}: tensor "${name}" is ${t.dtype}; a value head is saved as F32`);
    if (hidden !== null && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new Error(`${file}: tensor "${name}" has shape [${t.shape.join(', ')}], this model's value head (hidden ${hidden}) has [${shape.join(', ')}]`);
    }
  }
}
