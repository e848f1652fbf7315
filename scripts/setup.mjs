// `npm run setup`: everything a fresh machine with Node and Python needs to run rpo (see
// ensure.mjs): a LibTorch (pip torch into the project's own .venv when none is found; nothing
// global is touched), node_modules, the addon, dist/. `npm run demo` and `npm test` do this
// themselves; this is for a setup without running anything.
import { ensureEngine } from './ensure.mjs';

const { libtorch, done } = await ensureEngine();
console.log(`rpo setup: LibTorch ${libtorch.version} from ${libtorch.source} (${libtorch.root})`);
console.log(done.length > 0 ? `rpo setup: done (${done.join(', ')}). Try \`npx rpo info\`.` : 'rpo setup: everything was already in place.');
