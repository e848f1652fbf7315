// The `lora:` section: LoRA adapters with PEFT's meaning for every key (docs/lora.md).
//
//   lora.enabled         off by default: full fine-tuning
//   lora.r               rank (PEFT r)
//   lora.alpha           PEFT lora_alpha: scaling alpha / r (alpha / sqrt(r) with rslora)
//   lora.dropout         PEFT lora_dropout, on the adapter's input in training forwards
//   lora.target_modules  module names (q_proj, ..., or a GPTNeoX model's query_key_value, ...),
//                        or all-linear (every linear but the output head)
//   lora.init            kaiming (PEFT's init_lora_weights=True) or gaussian
//   lora.rslora          PEFT use_rslora
//   lora.from            a PEFT adapter directory to start from (its r, alpha and targets win)
//
// The seed's (HALOs') keys map here and win: model.use_peft → lora.enabled, model.load_lora_from
// → lora.from, model.peft.{lora_r, lora_alpha, lora_dropout, target_modules} → lora.* (the
// model.peft keys only with model.use_peft: true, as HALOs read them).
import { isMap, type ConfigMap, type ConfigValue } from './yaml.js';

export const LORA_INITS = ['kaiming', 'gaussian'] as const;
export type LoraInit = (typeof LORA_INITS)[number];

export interface LoraSection {
  enabled: boolean;
  r: number;
  alpha: number;
  dropout: number;
  /** Module names, or ['all-linear']. */
  target_modules: string[];
  init: LoraInit;
  rslora: boolean;
  /** A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) to start from. */
  from: string | null;
}

export const LORA_KEYS = [
  'lora', 'lora.enabled', 'lora.r', 'lora.alpha', 'lora.dropout', 'lora.target_modules', 'lora.init', 'lora.rslora', 'lora.from',
] as const;

export const LORA_DEFAULTS: LoraSection = {
  enabled: false,
  r: 16,
  alpha: 32,
  dropout: 0.05,
  target_modules: ['all-linear'],
  init: 'kaiming',
  rslora: false,
  from: null,
};

/** The `lora:` section of a resolved config (absent: off), with the seed's PEFT keys mapped. */
export function readLora(root: ConfigMap, errors: string[], notices: string[]): LoraSection {
  const raw = root.lora;
  if (raw !== undefined && raw !== null && !isMap(raw)) {
    errors.push(`lora: expected a section (mapping), got ${JSON.stringify(raw)}`);
    return { ...LORA_DEFAULTS };
  }
  const m: ConfigMap = { ...((raw as ConfigMap | undefined) ?? {}) };
  seedKeys(root, m, notices);
  const out: LoraSection = { ...LORA_DEFAULTS };
  const bool = (key: 'enabled' | 'rslora') => {
    const v = m[key];
    if (v === undefined) return;
    if (typeof v === 'boolean') out[key] = v;
    else errors.push(`lora.${key}: expected true or false, got ${JSON.stringify(v)}`);
  };
  bool('enabled');
  bool('rslora');
  if (m.r !== undefined) {
    if (typeof m.r === 'number' && Number.isInteger(m.r) && m.r >= 1) out.r = m.r;
    else errors.push(`lora.r: expected a positive integer (the adapters' rank), got ${JSON.stringify(m.r)}`);
  }
  if (m.alpha !== undefined) {
    if (typeof m.alpha === 'number' && Number.isFinite(m.alpha) && m.alpha > 0) out.alpha = m.alpha;
    else errors.push(`lora.alpha: expected a number > 0 (PEFT's lora_alpha), got ${JSON.stringify(m.alpha)}`);
  }
  if (m.dropout !== undefined) {
    if (typeof m.dropout === 'number' && m.dropout >= 0 && m.dropout < 1) out.dropout = m.dropout;
    else errors.push(`lora.dropout: expected a number in [0, 1), got ${JSON.stringify(m.dropout)}`);
  }
  if (m.target_modules !== undefined) {
    const t = targetModules(m.target_modules);
    if (t) out.target_modules = t;
    else errors.push(`lora.target_modules: expected all-linear or a non-empty list of module names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), got ${JSON.stringify(m.target_modules)}`);
  }
  if (m.init !== undefined) {
    if (m.init === true) out.init = 'kaiming';  // PEFT's init_lora_weights: true
    else if (typeof m.init === 'string' && (LORA_INITS as readonly string[]).includes(m.init)) out.init = m.init as LoraInit;
    else errors.push(`lora.init: expected kaiming (PEFT's default) or gaussian, got ${JSON.stringify(m.init)}`);
  }
  if (m.from !== undefined && m.from !== null) {
    if (typeof m.from === 'string' && m.from !== '') out.from = m.from;
    else errors.push(`lora.from: expected a PEFT adapter directory or null, got ${JSON.stringify(m.from)}`);
  }
  if (out.from !== null && !out.enabled) {
    out.enabled = true;
    notices.push(`lora.from=${out.from} → lora.enabled=true`);
  }
  return out;
}

function targetModules(v: ConfigValue): string[] | null {
  if (typeof v === 'string') {
    const names = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    return names.length > 0 ? (names.length === 1 && names[0]!.toLowerCase() === 'all-linear' ? ['all-linear'] : names) : null;
  }
  if (!Array.isArray(v) || v.length === 0) return null;
  if (!v.every((s) => typeof s === 'string' && s !== '')) return null;
  const names = v as string[];
  if (names.includes('all-linear') && names.length > 1) return null;
  return [...names];
}

/**
 * HALOs' model.use_peft / model.load_lora_from / model.peft.* onto lora.*. Like every seed alias
 * (lib/config/schema.ts), the seed's key wins: rpo's own files never contain it, so its presence
 * means a user (or an old saved config) put it there.
 */
function seedKeys(root: ConfigMap, m: ConfigMap, notices: string[]): void {
  const model = isMap(root.model) ? (root.model as ConfigMap) : {};
  const map = (from: string, value: ConfigValue | undefined, to: string) => {
    if (value === undefined || value === null) return;
    m[to] = value;
    notices.push(`${from}=${JSON.stringify(value)} → lora.${to} (the seed's name)`);
  };
  if (model.use_peft === true) map('model.use_peft', true, 'enabled');
  map('model.load_lora_from', model.load_lora_from, 'from');
  const peft = isMap(model.peft) ? (model.peft as ConfigMap) : {};
  if (model.use_peft === true) {
    map('model.peft.lora_r', peft.lora_r, 'r');
    map('model.peft.lora_alpha', peft.lora_alpha, 'alpha');
    map('model.peft.lora_dropout', peft.lora_dropout, 'dropout');
    map('model.peft.target_modules', peft.target_modules, 'target_modules');
  }
}
