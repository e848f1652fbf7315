// Model::generate: batched sampling with a KV cache, HF generate's semantics (left padding,
// positions from the attention mask, temperature -> top-k -> top-p warpers, max_length counted
// over the padded prompt).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/gemm.h"
#include "model/model_impl.h"

namespace rpo {

namespace {

// HF's TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper on fp32 logits [rows, V].
at::Tensor warp(at::Tensor logits, const GenerateOptions& o) {
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

// Every token id generate feeds to the embedding must be inside the vocabulary: on CUDA an
// out-of-range index is a device-side assert that poisons the whole process, not an error.
// The pad id is fed for finished rows and padding, prompts directly; stop ids are only compared,
// but one outside the vocabulary can never match, which is a misconfiguration worth naming.
void check_token_ids(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o, int64_t vocab) {
  const std::string range = " is outside the vocabulary [0, " + std::to_string(vocab) + ") of this model";
  if (o.pad_token_id < 0 || o.pad_token_id >= vocab)
    throw std::invalid_argument("generate: padTokenId (pad_token_id) " + std::to_string(o.pad_token_id) + range);
  for (size_t i = 0; i < o.stop_token_ids.size(); ++i) {
    const int64_t id = o.stop_token_ids[i];
    if (id < 0 || id >= vocab)
      throw std::invalid_argument("generate: stopTokenIds[" + std::to_string(i) + "] (eos / stop token) " + std::to_string(id) + range);
  }
  for (size_t r = 0; r < prompts.size(); ++r)
    for (size_t t = 0; t < prompts[r].size(); ++t)
      if (prompts[r][t] < 0 || prompts[r][t] >= vocab)
        throw std::invalid_argument("generate: prompt " + std::to_string(r) + ", token " + std::to_string(t) + ": id " + std::to_string(prompts[r][t]) + range);
}

// A packed prefill's mask is [total, total]: past this many prompt tokens the padded prefill runs
// (16M mask entries at the bound).
constexpr int64_t kMaxPackedTokens = 4096;

// The batch's prompts packed for the prefill (causal_lm.h's PackedPrompts), and their tokens as
// one row [1, total]; `last` gets each prompt's last token's index in that row.
PackedPrompts pack_prompts(const std::vector<std::vector<int32_t>>& prompts, int64_t P, int64_t sliding_window,
                           const at::Device& device, at::Tensor& ids, at::Tensor& last) {
  std::vector<int64_t> tok, pos, row, slot, seg_last;
  for (size_t r = 0; r < prompts.size(); ++r) {
    const int64_t n = static_cast<int64_t>(prompts[r].size());
    for (int64_t j = 0; j < n; ++j) {
      tok.push_back(prompts[r][j]);
      pos.push_back(j);
      row.push_back(static_cast<int64_t>(r));
      slot.push_back(P - n + j);
    }
    seg_last.push_back(static_cast<int64_t>(tok.size()) - 1);
  }
  const int64_t total = static_cast<int64_t>(tok.size());
  auto host = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
  PackedPrompts p;
  p.rows = static_cast<int64_t>(prompts.size());
  p.padded_length = P;
  p.position_ids = host(pos).view({1, total});
  p.row_index = host(row);
  p.slot_index = host(slot);
  auto q_pos = p.position_ids.view({total, 1}), k_pos = p.position_ids.view({1, total});
  auto allowed = (p.row_index.view({total, 1}) == p.row_index.view({1, total})).logical_and(k_pos <= q_pos);
  if (sliding_window > 0) allowed = allowed.logical_and(q_pos - k_pos < sliding_window);
  p.mask = allowed.view({1, 1, total, total});
  ids = host(tok).view({1, total});
  last = host(seg_last);
  return p;
}

}  // namespace

GenerateResult Model::generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) const {
  auto& m = *impl_;
  const int64_t rows = static_cast<int64_t>(prompts.size());
  if (rows == 0) return {};
  // Written so that NaN fails too (every comparison with NaN is false).
  if (o.do_sample && !(o.temperature > 0 && std::isfinite(o.temperature)))
    throw std::invalid_argument("generate: temperature must be a finite number > 0 when sampling");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw std::invalid_argument("generate: top_p must be in (0, 1]");
  check_token_ids(prompts, o, m.config.vocab_size);
  int64_t P = 0;
  for (size_t r = 0; r < prompts.size(); ++r) {
    if (prompts[r].empty()) throw std::invalid_argument("generate: prompt " + std::to_string(r) + " is empty");
    P = std::max<int64_t>(P, static_cast<int64_t>(prompts[r].size()));
  }
  int64_t budget = o.max_new_tokens > 0 ? o.max_new_tokens : INT64_MAX;
  if (o.max_length > 0) budget = std::min(budget, o.max_length - P);
  if (budget == INT64_MAX) throw std::invalid_argument("generate: set max_new_tokens or max_length");
  GenerateResult result;
  result.tokens.resize(rows);
  result.finish_reasons.assign(rows, "length");
  if (budget <= 0) return result;

  // Left-pad: every row's last prompt token sits at column P - 1.
  RowBatch b;
  b.rows = rows, b.seq_len = P;
  b.input_ids.assign(rows * P, static_cast<int32_t>(o.pad_token_id));
  b.attention_mask.assign(rows * P, 0);
  for (int64_t r = 0; r < rows; ++r) {
    const auto& p = prompts[r];
    const int64_t off = P - static_cast<int64_t>(p.size());
    std::copy(p.begin(), p.end(), b.input_ids.begin() + r * P + off);
    std::fill(b.attention_mask.begin() + r * P + off, b.attention_mask.begin() + (r + 1) * P, 1);
  }
  auto t = batch_tensors(b, m.config.vocab_size, m.device);
  // Prompts of one length: no left padding, so attention runs causal without a mask throughout
  // (generated tokens extend every row alike; finished rows keep attending, as in HF).
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto weight = m.lm->output_weight();
  std::vector<LayerCache> cache(m.config.num_hidden_layers);
  // Preallocated for the prompt and every new token (up to a bound past which it grows).
  for (auto& c : cache) c.capacity = P + std::min<int64_t>(budget, 8192);
  // Prompts of different lengths: a packed prefill (no work on padding) when the mask stays small.
  int64_t prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += static_cast<int64_t>(p.size());
  const bool pack = o.use_cache && rows > 1 && prompt_tokens < rows * P && prompt_tokens <= kMaxPackedTokens;
  at::Tensor ids = t.input_ids, mask = t.attention_mask;
  at::Tensor step_input = ids;
  std::vector<bool> done(rows, false);
  int64_t past = 0;
  for (int64_t step = 0; step < budget; ++step) {
    at::Tensor hidden, last;
    if (step == 0 && pack) {
      at::Tensor packed_ids, last_index;
      auto packed = pack_prompts(prompts, P, m.config.sliding_window, m.device, packed_ids, last_index);
      ForwardOptions fwd;
      fwd.cache = &cache;
      fwd.packed = &packed;
      hidden = m.lm->hidden_states(packed_ids, mask, fwd);
      past = P;
      last = hidden.squeeze(0).index_select(0, last_index);
    } else if (o.use_cache) {
      ForwardOptions fwd;
      fwd.cache = &cache;
      fwd.past_length = past;
      fwd.right_padded = t.right_padded;
      hidden = m.lm->hidden_states(step_input, mask, fwd);
      past += step_input.size(1);
    } else {
      ForwardOptions fwd;
      fwd.right_padded = t.right_padded;
      hidden = m.lm->hidden_states(ids, mask, fwd);
    }
    if (!last.defined()) last = hidden.select(1, hidden.size(1) - 1);
    auto logits = product(last, weight.t()).to(at::kFloat);  // few rows: gemm.h's decode kernel
    at::Tensor next;
    if (!o.do_sample) {
      next = logits.argmax(-1).cpu();
    } else {
      auto probs = warp(logits, o).softmax(-1).cpu();
      next = at::multinomial(probs, 1, false, gen).squeeze(1);
    }
    auto next_acc = next.accessor<int64_t, 1>();
    bool all_done = true;
    std::vector<int64_t> appended(rows);
    for (int64_t r = 0; r < rows; ++r) {
      if (done[r]) {
        appended[r] = o.pad_token_id;
        continue;
      }
      const int64_t tok = next_acc[r];
      appended[r] = tok;
      if (std::find(o.stop_token_ids.begin(), o.stop_token_ids.end(), tok) != o.stop_token_ids.end()) {
        done[r] = true;
        result.finish_reasons[r] = "stop";
      } else {
        result.tokens[r].push_back(static_cast<int32_t>(tok));
        all_done = false;
      }
    }
    if (all_done) break;
    step_input = at::tensor(appended, at::kLong).view({rows, 1}).to(m.device);
    ids = at::cat({ids, step_input}, 1);
    // Finished rows keep attending as HF does (mask 1); their tokens are padding we discard.
    mask = at::cat({mask, at::ones({rows, 1}, mask.options())}, 1);
  }
  return result;
}

}  // namespace rpo
