// Which device a run uses: `device: auto` is CUDA when the engine sees one, else the CPU.
import { cudaAvailable } from '../native.js';

export function resolveDevice(device: string): string {
  if (device === 'auto') return cudaAvailable() ? 'cuda' : 'cpu';
  return device;
}
