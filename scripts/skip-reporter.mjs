// A vitest reporter that ends the run with one loud line for every test file that skipped
// something: which suites and tests, and why. A skip otherwise shows only in vitest's count, and
// a newcomer can't tell "no data parallelism built" or "no Chromium" from nothing at all.
//
// The why: the note of `ctx.skip(note)`, else what the file itself printed about skipping (the
// test files say why when they skip: `console.warn('... skipping ...: <reason>')`).
// With RPO_SKIPS_JSON=<file> the same list is written there as JSON ({ file, skipped[], why[] }[])
// for CI (.ci/run fails when a data-parallel suite skipped).
import { writeFileSync } from 'node:fs';

const SKIP_WORDS = /\bskip/i;

export default class SkipReporter {
  /** taskId -> what it printed about skipping. */
  logs = new Map();

  onInit(vitest) {
    this.vitest = vitest;
  }

  onUserConsoleLog(log) {
    if (!log.taskId || !SKIP_WORDS.test(log.content)) return;
    const list = this.logs.get(log.taskId) ?? [];
    list.push(log.content.trim());
    this.logs.set(log.taskId, list);
  }

  onTestRunEnd(testModules) {
    const report = [];
    for (const mod of testModules) {
      const skipped = [];
      const notes = [];
      // A suite that skipped as a whole is one entry; its tests are not listed again.
      const skippedSuites = [...mod.children.allSuites()].filter((s) => s.state() === 'skipped');
      const inSkippedSuite = (t) => {
        for (let p = t.parent; p && p.type === 'suite'; p = p.parent) if (skippedSuites.includes(p)) return true;
        return false;
      };
      for (const s of skippedSuites) {
        if (s.parent?.type === 'suite' && skippedSuites.includes(s.parent)) continue;
        skipped.push(`suite "${s.fullName}" (${[...s.children.allTests()].length} tests)`);
      }
      for (const t of mod.children.allTests('skipped')) {
        if (t.options.mode === 'todo' || inSkippedSuite(t)) continue;
        skipped.push(`test "${t.fullName}"`);
        const note = t.result().note;
        if (note) notes.push(note);
      }
      if (skipped.length === 0) continue;
      const printed = [mod.id, ...[...mod.children.allTests()].map((t) => t.id), ...[...mod.children.allSuites()].map((s) => s.id)].flatMap((id) => this.logs.get(id) ?? []);
      const why = [...new Set([...notes, ...printed])];
      report.push({ file: mod.relativeModuleId, skipped, why });
    }
    if (process.env.RPO_SKIPS_JSON) writeFileSync(process.env.RPO_SKIPS_JSON, JSON.stringify(report, null, 2) + '\n');
    if (report.length === 0) {
      console.log('\nrpo test: nothing skipped itself.');
      return;
    }
    console.log(`\n${'!'.repeat(100)}\nrpo test: ${report.length} test file${report.length === 1 ? '' : 's'} skipped part of what they test:`);
    for (const r of report) {
      console.log(`SKIPPED in ${r.file}: ${r.skipped.join('; ')}`);
      console.log(`  why: ${r.why.length > 0 ? r.why.join(' | ') : 'the file did not say (a skipIf condition)'}`);
    }
    console.log('!'.repeat(100));
  }
}
