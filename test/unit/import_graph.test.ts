// No module under lib/ imports itself through others: a circle makes load order matter (a
// binding read before its module ran is undefined) and ties layers that should stack. Every
// import counts: static, `import type` (a type-only circle still ties the files' meaning) and
// dynamic `import()` (cli.ts loads each command lazily; a command importing cli.ts back closes
// a circle all the same).
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const LIB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../lib');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const SPECIFIER = [
  /\b(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]/g, // import x from, import type x from, export * from
  /\bimport\s*['"]([^'"]+)['"]/g, // import './side-effect.js'
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, // await import('./commands/x.js')
];

/** The relative imports of a module's source, as absolute .ts paths. */
export function relativeImports(file: string, source: string): string[] {
  const out = new Set<string>();
  for (const re of SPECIFIER) {
    for (const m of source.matchAll(re)) {
      const spec = m[1]!;
      if (!spec.startsWith('.')) continue;
      out.add(path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts'));
    }
  }
  return [...out];
}

/** The circles of a graph: each strongly connected component of more than one module (or a module importing itself), as one cycle through it. */
export function importCircles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's algorithm.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return components.map((c) => cycleThrough(graph, new Set(c)));
}

/** One cycle inside a strongly connected component, from its first module back to it (breadth-first: the shortest). */
function cycleThrough(graph: ReadonlyMap<string, readonly string[]>, component: ReadonlySet<string>): string[] {
  const start = [...component].sort()[0]!;
  const parent = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const cycle = [start];
        for (let u = v; u !== start; u = parent.get(u)!) cycle.splice(1, 0, u);
        return [...cycle, start];
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

describe('import graph of lib/', () => {
  it('finds the circle in a graph that has one, and none in a chain (the check itself)', () => {
    const chain = new Map([['a', ['b']], ['b', ['c']], ['c', []]]);
    expect(importCircles(chain)).toEqual([]);
    const circle = new Map([['a', ['b']], ['b', ['c', 'd']], ['c', ['a']], ['d', []]]);
    expect(importCircles(circle)).toEqual([['a', 'b', 'c', 'a']]);
    expect(importCircles(new Map([['a', ['a']]]))).toEqual([['a', 'a']]);
  });

  it('reads static, type-only, re-export and dynamic imports', () => {
    const file = path.join(LIB, 'x', 'm.ts');
    const src = [
      "import { a } from './a.js';",
      "import type {\n  B,\n} from '../b.js';",
      "export { c } from './c.js';",
      "import './d.js';",
      "const e = await import('./e.js');",
      "import yargs from 'yargs';",
    ].join('\n');
    expect(relativeImports(file, src).map((p) => path.relative(LIB, p)).sort()).toEqual(['b.ts', 'x/a.ts', 'x/c.ts', 'x/d.ts', 'x/e.ts']);
  });

  it('has no import circle', () => {
    const graph = new Map<string, string[]>();
    for (const file of sourceFiles(LIB)) graph.set(file, relativeImports(file, readFileSync(file, 'utf8')));
    const circles = importCircles(graph).map((c) => c.map((f) => path.relative(LIB, f)).join(' → '));
    expect(circles).toEqual([]);
  });
});
