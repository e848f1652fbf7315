// The engine's CPU allocator for large tensors (1 MiB and more; smaller ones keep LibTorch's).
//
// glibc's malloc serves such blocks from its heap once its dynamic mmap threshold has risen (it
// does, up to 32 MiB, the first time a mapped block is freed), and freed activations then
// fragment the heap: a train step of the ~100M benchmark peaked ~0.55 GiB above its live tensors
// (2.93 GiB). Mapping every large block and unmapping it when freed makes the RSS follow the live
// tensors (2.36 GiB), but each block then faults in fresh zeroed pages: +30% step time. Here each
// large block is its own mapping, and a freed one is kept, by size (rounded to 64 KiB), for the
// next request of that size, at most 4 per size and 512 MiB in all: a layer asks for the same
// shapes as the one before it, so most requests are served without a page fault, and what is kept
// stays small. Whatever is kept is unmapped at the end of each engine call (run_on_engine_thread),
// so between calls the process holds its live tensors only.
//
// RPO_CPU_CACHE_MB=n caps the bytes kept (0: LibTorch's allocator as it is); with glibc's
// MALLOC_MMAP_THRESHOLD_ set it is not installed either (whoever fixed glibc's threshold wants
// glibc's behaviour: lib/plan/measure.ts does, to measure live tensors).
#pragma once

#include <cstddef>

namespace rpo {

// Installs the allocator as LibTorch's CPU allocator (once; later calls do nothing).
void install_cpu_allocator();
// Unmaps every kept block (the engine thread calls it after each call).
void release_cached_cpu_blocks();
// Bytes kept right now (tests).
size_t cached_cpu_bytes();

}  // namespace rpo
