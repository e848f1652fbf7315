// What config.ts (the Llama family) and gpt_neox_config.ts (GPTNeoX) both read config.json
// with: a field reader whose messages name the file and the field, and the token ids a written
// config.json carries. Here, below both, so neither imports the other for them.

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function has(o: Json, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

/** Reads fields of one JSON object with messages that name the file and the field. */
export class Fields {
  constructor(
    private readonly o: Json,
    private readonly file: string,
    private readonly prefix = '',
  ) {}

  private name(key: string): string {
    return `${this.prefix}${key}`;
  }

  fail(msg: string): never {
    throw new Error(`${this.file}: ${msg}`);
  }

  /** Present and not null. */
  given(key: string): boolean {
    return has(this.o, key) && this.o[key] !== null && this.o[key] !== undefined;
  }

  raw(key: string): unknown {
    return has(this.o, key) ? this.o[key] : undefined;
  }

  positiveInt(key: string, fallback?: number): number {
    if (!this.given(key)) {
      if (fallback !== undefined) return fallback;
      this.fail(`missing required field ${this.name(key)}`);
    }
    const v = this.o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      this.fail(`${this.name(key)} must be a positive integer (got ${JSON.stringify(v)})`);
    }
    return v;
  }

  positiveNumber(key: string, fallback?: number): number {
    if (!this.given(key)) {
      if (fallback !== undefined) return fallback;
      this.fail(`missing required field ${this.name(key)}`);
    }
    const v = this.o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      this.fail(`${this.name(key)} must be a positive number (got ${JSON.stringify(v)})`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.given(key)) return fallback;
    const v = this.o[key];
    if (typeof v !== 'boolean') this.fail(`${this.name(key)} must be true or false (got ${JSON.stringify(v)})`);
    return v;
  }
}

/** Token ids written into a saved config.json beside the shape. */
export interface HfConfigExtras {
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
}
