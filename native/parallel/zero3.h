// ZeRO stage 3 over a ProcessGroup (zero3.cpp): the parameters too are sharded. The binding's
// view; the model code sees parallel/zero3_units.h.
#pragma once

#include <cstdint>
#include <memory>

#include "parallel/dist.h"

namespace rpo {

class Trainer;
class Zero3Impl;

// Each rank keeps a contiguous, element-balanced flat shard of every unit's parameters (a unit:
// one decoder layer, or everything outside the layers), with the shard's AdamW state (and in
// bf16-mixed its fp32 master). Forwards all-gather a unit's parameters just before they are
// used and free them after; backward gathers them again and reduce-scatters the unit's
// gradients to their owners as its backward ends; the optimizer step updates the shards. The
// trainer's live reference model, if any, is sharded the same way (no state, no gradients).
// Checkpoints stay the one-process format: gather_state() on every rank gives rank 0 the whole
// model's weights and optimizer state for the write, release_state() frees them again.
// After the Zero3 is dropped, the policy's and reference's parameters hold no data: dispose them.
class Zero3 {
 public:
  Zero3(std::shared_ptr<Trainer> trainer, std::shared_ptr<ProcessGroup> group);
  ~Zero3();
  const ZeroPlan& plan() const;
  void gather_state();
  void release_state();
  // Elements of AdamW state (shards) this rank holds now (tests).
  int64_t state_numel() const;

 private:
  std::unique_ptr<Zero3Impl> impl_;
};

}  // namespace rpo
