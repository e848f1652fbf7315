// The sampler (sampler.h): logits processors and per-prompt counter-based draws, all on the
// logits' device; nothing here copies to the host.
#include "model/sampler.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace rpo {

at::Tensor warp_logits(at::Tensor logits, const at::Tensor& seen, const GenerateOptions& o) {
  // transformers' order: processors (the repetition penalty), then warpers (temperature, top-k,
  // top-p); each as its logits processor computes it.
  if (o.repetition_penalty != 1.0) {
    auto penalized = at::where(logits < 0, logits * o.repetition_penalty, logits / o.repetition_penalty);
    logits = at::where(seen, penalized, logits);
  }
  if (o.temperature != 1.0) logits = logits / o.temperature;
  if (o.top_k > 0 && o.top_k < logits.size(-1)) {
    auto kth = std::get<0>(at::topk(logits, o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, -INFINITY);
  }
  if (o.top_p < 1.0) {
    auto [sorted, idx] = at::sort(logits, -1, /*descending=*/false);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto remove_sorted = cumulative <= (1 - o.top_p);
    remove_sorted.narrow(-1, sorted.size(-1) - 1, 1).fill_(false);  // keep at least one token
    auto remove = remove_sorted.scatter(-1, idx, remove_sorted);
    logits = logits.masked_fill(remove, -INFINITY);
  }
  return logits;
}

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ULL;
constexpr uint64_t kMix2 = 0x94D049BB133111EBULL;

uint64_t splitmix64(uint64_t x) {
  x += kGolden;
  x = (x ^ (x >> 30)) * kMix1;
  x = (x ^ (x >> 27)) * kMix2;
  return x ^ (x >> 31);
}

int64_t as_signed(uint64_t x) { return static_cast<int64_t>(x); }

// A logical right shift of int64 tensors (>> on a signed tensor is arithmetic).
at::Tensor shift_right(const at::Tensor& x, int s) {
  return at::bitwise_and(at::bitwise_right_shift(x, s), as_signed((~0ULL) >> s));
}

// splitmix64 in int64 tensor ops: products wrap modulo 2^64 as the uint64 ones do.
at::Tensor splitmix64(at::Tensor x) {
  x = x + as_signed(kGolden);
  x = at::bitwise_xor(x, shift_right(x, 30)) * as_signed(kMix1);
  x = at::bitwise_xor(x, shift_right(x, 27)) * as_signed(kMix2);
  return at::bitwise_xor(x, shift_right(x, 31));
}

}  // namespace

int64_t stream_key(uint64_t seed, int64_t prompt_index) {
  return as_signed(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(prompt_index)));
}

at::Tensor stream_uniforms(const at::Tensor& key, const at::Tensor& counter) {
  auto bits = splitmix64(at::bitwise_xor(key, splitmix64(counter)));
  // The top 53 bits, as a double in [0, 1).
  return shift_right(bits, 11).to(at::kDouble) * std::ldexp(1.0, -53);
}

at::Tensor choose_tokens(const at::Tensor& logits, const at::Tensor& seen, const at::Tensor& key,
                         const at::Tensor& counter, const GenerateOptions& o) {
  if (!o.do_sample) {
    if (o.repetition_penalty == 1.0) return logits.argmax(-1);
    GenerateOptions penalty_only;  // greedy runs the processors (the penalty), not the warpers
    penalty_only.repetition_penalty = o.repetition_penalty;
    return warp_logits(logits, seen, penalty_only).argmax(-1);
  }
  auto probs = warp_logits(logits, seen, o).softmax(-1);
  // Inverse CDF: the first token whose cumulative probability passes u x total. A token of
  // probability 0 never passes (its cumulative equals the one before), so masked tokens are
  // never drawn; float64 keeps the sum of 10^5 small terms exact enough.
  auto cdf = probs.to(at::kDouble).cumsum(-1);
  auto target = stream_uniforms(key, counter) * cdf.select(-1, cdf.size(-1) - 1);
  auto index = cdf.le(target.unsqueeze(-1)).sum(-1);
  // u x total can round up to the total itself: the most probable token then.
  return at::where(index >= logits.size(-1), probs.argmax(-1), index);
}

}  // namespace rpo

namespace rpo {

std::vector<float> warp_logits(const std::vector<float>& logits, int64_t rows,
                               const std::vector<std::vector<int32_t>>& context, const GenerateOptions& options) {
  if (rows <= 0 || logits.size() % static_cast<size_t>(rows) != 0)
    throw std::invalid_argument("warpLogits: " + std::to_string(logits.size()) + " logits are not " + std::to_string(rows) + " rows");
  if (static_cast<int64_t>(context.size()) != rows)
    throw std::invalid_argument("warpLogits: " + std::to_string(context.size()) + " contexts for " + std::to_string(rows) + " rows");
  const int64_t vocab = static_cast<int64_t>(logits.size()) / rows;
  auto l = at::tensor(logits, at::kFloat).view({rows, vocab});
  auto seen = at::zeros({rows, vocab}, at::kBool);
  for (int64_t r = 0; r < rows; ++r)
    for (int32_t id : context[r]) {
      if (id < 0 || id >= vocab) throw std::invalid_argument("warpLogits: context " + std::to_string(r) + " has id " + std::to_string(id) + " outside the vocabulary");
      seen[r][id] = true;
    }
  auto w = warp_logits(l, seen, options).contiguous();
  return std::vector<float>(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
}

}  // namespace rpo
