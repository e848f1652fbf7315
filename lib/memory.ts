// Process memory as the kernel counts it (Linux): resident set size now and its peak.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

function statusField(name: string): number | null {
  if (!existsSync('/proc/self/status')) return null;
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : null;
}

/** Peak resident set size in bytes (VmHWM), or null off Linux. */
export function peakRssBytes(): number | null {
  return statusField('VmHWM');
}

/** Current resident set size in bytes (VmRSS), or null off Linux. */
export function rssBytes(): number | null {
  return statusField('VmRSS');
}

/** Restarts the peak from the current RSS (writes 5 to /proc/self/clear_refs); false if unsupported. */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}
