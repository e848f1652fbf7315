// The engine's CPU allocator for large tensors (1 MiB and more; smaller ones keep LibTorch's).
//
// glibc's malloc serves them from its heap once its dynamic mmap threshold has risen (it does, up
// to 32 MiB, the first time a mapped block is freed), and freed activations then fragment the
// heap: a train step of the ~100M benchmark peaked ~0.5 GiB above its live tensors. Mapping every
// large block and unmapping it when freed makes the RSS follow the live tensors, but each new
// block faults in fresh zeroed pages: a step's temporaries cost +30% time. Here each large block
// is its own mapping, and a freed block is kept, by size, for the next request of that size
// (a step asks for the same shapes layer after layer), up to a cap on the bytes kept; what is
// kept is unmapped at the end of each engine call (run_on_engine_thread), so between calls the
// process holds its live tensors only.
#pragma once

#include <cstddef>

namespace rpo {

// Installs the allocator as LibTorch's CPU allocator (once; later calls do nothing).
// RPO_CPU_CACHE_MB=n caps the bytes kept (default 512); 0 leaves LibTorch's allocator in place.
void install_cpu_allocator();
// Unmaps every kept block (the engine thread calls it after each call).
void release_cached_cpu_blocks();
// Bytes kept right now (tests).
size_t cached_cpu_bytes();

}  // namespace rpo
