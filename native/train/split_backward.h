// Backward of a loss that reads two forwards through the policy (rdpo, rorpo: response rows and
// rationale rows) without a second set of gradients waiting in autograd.
//
// One backward over both forwards makes each parameter's AccumulateGrad wait until both forwards
// have sent their share: the forward backwarded first (the rationale one, built last) holds a
// full set of gradients in autograd's buffers until the other reaches each parameter. Instead the
// loss reads leaf copies of the forwards' log-prob outputs; backward runs to those leaves (a few
// numbers per row), then through each forward on its own from its leaves' gradients, each adding
// into .grad as it goes. The gradient each forward's graph receives is the same tensor of values
// as in the single backward, so from empty .grad the sums are the same floating-point additions
// (a + b): the results are bit-identical (test/native/split_backward.test.ts).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "loss/logprobs.h"

namespace rpo {

// One forward's differentiable outputs and the leaves the loss reads in their place.
struct LeafLogps {
  RowLogpTensors outputs;  // the forward's own (sum and mean carry its graph)
  RowLogpTensors leaves;   // sum and mean: detached, requiring grad; count as is
};

LeafLogps as_leaves(const RowLogpTensors& forward);

// Backward of `loss` (a scalar built on the leaves) to the leaves, then through each forward in
// the order given, each from its leaves' gradients (a forward the loss does not read is skipped).
void split_backward(const at::Tensor& loss, const std::vector<LeafLogps>& forwards_in_order);

// RPO_SINGLE_BACKWARD=1 (read at each call): one backward over both forwards, the reference the
// split one is tested against.
bool single_backward_requested();

// True while split_backward runs a backward that is not the last to reach the parameters
// (GradSync's ready hooks then wait for the last one: native/parallel/grad_sync.cpp).
bool in_partial_backward();

}  // namespace rpo
