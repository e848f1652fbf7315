// Scenarios that could kill the process they run in (an abort in LibTorch, libgomp dying on a
// thread count), run by tests in a child process: the test sees an exit code or a signal and
// fails cleanly instead of taking the test runner down. Prints one JSON line:
// {"ok": true} or {"ok": false, "name": ..., "message": ...}.
//
//   node --import tsx test/native/child.ts save-state FILE   train one step, then saveState(FILE)
//   node --import tsx test/native/child.ts threads N         setNumThreads(Number(N)), then some work
//   node --import tsx test/native/child.ts raw-threads N     the same on the raw addon (no TS checks)
//   node --import tsx test/native/child.ts load              load the addon (reads RPO_NUM_THREADS), then some work
import { Model, Trainer, addon, getNumThreads, setNumThreads } from '../../lib/native.js';
import { randomBatch, tinyConfig } from './helpers.js';

async function saveState(file: string): Promise<void> {
  const config = tinyConfig();
  const model = await Model.create(config, { seed: 5 });
  const trainer = new Trainer(model, null, { loss: { name: 'sft' } });
  // One step, so that AdamW holds its moments: a state of ~2 x the weights' bytes.
  await trainer.microStep(randomBatch(5, { rows: 2, seqLen: 8, vocab: config.vocab_size }), { nPairs: 2 });
  await trainer.optimizerStep({ lr: 1e-3 });
  await trainer.saveState(file);
}

/** Work big enough to enter LibTorch's parallel regions, where the thread pool is started. */
async function parallelWork(): Promise<void> {
  const config = tinyConfig({ vocab_size: 4096, hidden_size: 128, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 32 });
  const model = await Model.create(config, { seed: 6 });
  await model.logits(randomBatch(6, { rows: 8, seqLen: 64, vocab: config.vocab_size }));
  model.dispose();
}

async function main(): Promise<void> {
  const [what, arg] = process.argv.slice(2);
  try {
    if (what === 'save-state' && arg) await saveState(arg);
    else if (what === 'threads' && arg) {
      setNumThreads(Number(arg));
      await parallelWork();
    } else if (what === 'raw-threads' && arg) {
      addon().setNumThreads(Number(arg));
      await parallelWork();
    } else if (what === 'load') {
      addon();
      await parallelWork();
    }
    else throw new Error(`child.ts: unknown scenario ${JSON.stringify(process.argv.slice(2))}`);
    const threads = what === 'save-state' ? undefined : getNumThreads();
    process.stdout.write(`${JSON.stringify({ ok: true, threads })}\n`);
  } catch (e) {
    const err = e as Error;
    process.stdout.write(`${JSON.stringify({ ok: false, name: err.name, message: err.message })}\n`);
  }
}

await main();
