#include "train/split_backward.h"

#include <torch/csrc/autograd/autograd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace rpo {

namespace {

// A counter, not a thread-local: on CUDA autograd runs the graph (and GradSync's hooks) on the
// engine's device threads, not on the thread that called backward.
std::atomic<int> partial_backwards{0};

struct PartialBackward {
  explicit PartialBackward(bool on) : on_(on) {
    if (on_) ++partial_backwards;
  }
  ~PartialBackward() {
    if (on_) --partial_backwards;
  }
  bool on_;
};

at::Tensor leaf(const at::Tensor& t) { return t.defined() ? t.detach().requires_grad_(t.requires_grad()) : t; }

}  // namespace

LeafLogps as_leaves(const RowLogpTensors& forward) {
  // A leaf requires grad when its output does (count never does: it comes from the labels).
  return {forward, {leaf(forward.sum), leaf(forward.mean), forward.count}};
}

void split_backward(const at::Tensor& loss, const std::vector<LeafLogps>& forwards_in_order) {
  // (forward, output) of each leaf that requires grad: sum is output 0, mean output 1.
  std::vector<std::pair<size_t, int>> which;
  std::vector<at::Tensor> leaves;
  for (size_t i = 0; i < forwards_in_order.size(); ++i) {
    const auto& l = forwards_in_order[i].leaves;
    const at::Tensor* outs[2] = {&l.sum, &l.mean};
    for (int k = 0; k < 2; ++k) {
      if (!outs[k]->defined() || !outs[k]->requires_grad()) continue;
      which.emplace_back(i, k);
      leaves.push_back(*outs[k]);
    }
  }
  if (leaves.empty()) return;
  // The loss's graph only: its inputs are leaves, so nothing reaches the parameters here.
  auto grads = torch::autograd::grad({loss}, leaves, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < forwards_in_order.size(); ++i) {
    const auto& f = forwards_in_order[i];
    std::vector<at::Tensor> outputs, seeds;
    for (size_t j = 0; j < which.size(); ++j) {
      if (which[j].first != i || !grads[j].defined()) continue;  // undefined: an output the loss does not read (dpo: the mean)
      outputs.push_back(which[j].second == 0 ? f.outputs.sum : f.outputs.mean);
      seeds.push_back(grads[j]);
    }
    if (outputs.empty()) continue;
    // Every backward but the last leaves .grad unfinished for parameters the later ones reach.
    PartialBackward partial(i + 1 < forwards_in_order.size());
    torch::autograd::backward(outputs, seeds);
  }
}

bool single_backward_requested() {
  const char* env = std::getenv("RPO_SINGLE_BACKWARD");
  return env != nullptr && std::strcmp(env, "1") == 0;
}

bool in_partial_backward() { return partial_backwards.load() > 0; }

}  // namespace rpo
