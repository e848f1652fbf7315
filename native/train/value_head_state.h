// loss=ppo: the value head's optimizer state (its AdamW moments and step counts, or RMSprop's
// averages) in a checkpoint, `value_head_optimizer.pt` beside optimizer.pt, so a resumed ppo run
// continues as the uninterrupted one. The file follows optimizer.pt's conventions (LibTorch's
// archive format, written atomically; native/train/optimizer_state.cpp):
//
//   rpo/format      "rpo-value-head-optimizer-state-1"
//   rpo/optimizer   "AdamW" | "RMSprop" (torch::optim, fp32 always, as the head)
//   rpo/count       the head's parameter count (6)
//   per parameter i that has state, under the seed's state-dict names:
//     state/i/name (summary.0.weight ...), state/i/step,
//     AdamW: state/i/exp_avg, state/i/exp_avg_sq; RMSprop: state/i/square_avg (+ momentum_buffer,
//     grad_avg when the options make them)
#pragma once

#include <functional>
#include <string>

namespace rpo {

struct PpoState;

extern const char* const kValueHeadOptimizerFile;

// Writes `dir`/value_head_optimizer.pt atomically (errors name the file).
void save_value_head_optimizer(const PpoState& p, const std::string& dir);

// Reads `dir`/value_head_optimizer.pt and checks it against the head and its optimizer (errors
// name the file, the parameter and the tensor); returns what puts it in place, having changed
// nothing yet. A checkpoint written before rpo saved this file has none: then `warning` says so
// and the returned function keeps the live (fresh) moments.
std::function<void()> stage_value_head_optimizer(PpoState& p, const std::string& dir, std::string& warning);

}  // namespace rpo
