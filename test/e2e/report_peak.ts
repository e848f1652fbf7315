// Preloaded into a process (`node --import <tsx> --import report_peak.ts ...`) by rank_memory.ts:
// at exit, writes the process's peak resident set (VmHWM, bytes) to $RPO_TEST_PEAK_FILE. At exit,
// so the peak covers the whole run, whatever the command does last.
import { writeFileSync } from 'node:fs';

import { peakRssBytes } from '../../lib/memory.js';

const file = process.env.RPO_TEST_PEAK_FILE;
if (file) process.on('exit', () => writeFileSync(file, String(peakRssBytes() ?? -1)));
