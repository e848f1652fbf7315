// What the CPU this test runs on can do, read from /proc/cpuinfo (tests that expect a backend
// choice need the same answer the engine reaches from the CPU's features).
import { readFileSync } from 'node:fs';

/** oneDNN takes fp32 products on x86 CPUs with AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT. */
export function cpuHasOnednnFp32(): boolean {
  try {
    const flags = readFileSync('/proc/cpuinfo', 'utf8');
    return (/\bavx512bw\b/.test(flags) && /\bavx512vl\b/.test(flags) && /\bavx512dq\b/.test(flags)) || /\bavx_ne_convert\b/.test(flags);
  } catch {
    return false;
  }
}
