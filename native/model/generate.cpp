// Model::generate: continuous batching over a fixed number of slots, decoded on the device.
//
// Each slot holds one prompt's sequence from column 0 of a preallocated KV cache. A decode step
// feeds every slot's last token, and the next token is chosen, recorded and checked against the
// stop tokens and the prompt's budget on the device (sampler.h; the state tensors below); the host
// reads the finished flags only every few steps (one small copy), takes the finished prompts'
// tokens, and prefills the next waiting prompts into the freed slots. When no prompt waits, the
// running rows move down into the freed slots (their cache and state copied), so that a step
// computes the running rows only, a dense prefix of the slots. On CUDA a step replays a CUDA graph
// (decode_graph.h). A prompt's tokens depend on its own sequence only (and, sampling, on (seed,
// its index)): not on its slot or neighbours.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <stdexcept>

#include "model/decode_graph.h"
#include "model/gemm.h"
#include "model/model_impl.h"
#include "model/sampler.h"

namespace rpo {

namespace {

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

void check_options(const GenerateOptions& o) {
  // Written so that NaN fails too (every comparison with NaN is false).
  if (o.do_sample && !(o.temperature > 0 && std::isfinite(o.temperature)))
    throw std::invalid_argument("generate: temperature must be a finite number > 0 when sampling");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw std::invalid_argument("generate: top_p must be in (0, 1]");
  if (!(o.repetition_penalty > 0 && std::isfinite(o.repetition_penalty)))
    throw std::invalid_argument("generate: repetition_penalty must be a finite number > 0");
  if (o.slots < 0) throw std::invalid_argument("generate: slots must be >= 0");
  if (o.first_prompt_index < 0) throw std::invalid_argument("generate: firstPromptIndex must be >= 0");
}

// A packed prefill's mask is [total, total]: prompts are prefilled together up to this many
// tokens (16M mask entries at the bound); a longer prompt is prefilled alone.
constexpr int64_t kMaxPackedTokens = 4096;

// How many decode steps the host lets pass between looks at the finished flags: on the CPU a
// look costs nothing (no device to wait for), on CUDA it waits for the queued steps to finish.
int64_t check_interval(const at::Device& device) { return device.is_cuda() ? 8 : 1; }

struct Prompt {
  int64_t index;   // in the call's list
  int64_t length;  // tokens
  int64_t budget;  // new tokens at most (> 0)
};

// The slots, their cache and the device-side decoding state.
class SlotDecoder {
 public:
  SlotDecoder(const ModelImpl& m, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
              int64_t slots, int64_t capacity, int64_t max_budget)
      : m_(m), prompts_(prompts), o_(o), window_(sliding_window(m.config)) {
    cache_.resize(m.config.num_hidden_layers);
    for (auto& c : cache_) c.slots = slots, c.capacity = capacity;
    auto lg = at::TensorOptions().dtype(at::kLong).device(m.device);
    auto b = at::TensorOptions().dtype(at::kBool).device(m.device);
    length_ = at::zeros({slots}, lg);
    generated_ = at::zeros({slots}, lg);
    budget_ = at::zeros({slots}, lg);
    key_ = at::zeros({slots}, lg);
    next_ = at::full({slots}, o.pad_token_id, lg);
    done_ = at::ones({slots}, b);  // an empty slot is a finished one
    stopped_ = at::zeros({slots}, b);
    out_ = at::zeros({slots, max_budget + 1}, lg);  // +1: a finished row's ignored write
    if (o.repetition_penalty != 1.0) seen_ = at::zeros({slots, m.config.vocab_size}, b);
    stop_ids_ = at::tensor(o.stop_token_ids, at::kLong).to(m.device);
    columns_ = at::arange(std::max(capacity, slots), lg);  // cache columns, and slot indices
    weight_ = m.lm->output_weight();
  }

  // Prefills `group` (slot, prompt) pairs together and chooses each prompt's first token.
  void prefill(const std::vector<std::pair<int64_t, Prompt>>& group) {
    std::vector<int64_t> tok, pos, seg, slot, last, slot_of, length, budget, key, seen_slot;
    for (const auto& [s, p] : group) {
      const auto& ids = prompts_[p.index];
      for (int64_t j = 0; j < p.length; ++j) {
        tok.push_back(ids[j]);
        pos.push_back(j);
        seg.push_back(static_cast<int64_t>(slot_of.size()));
        slot.push_back(s);
      }
      last.push_back(static_cast<int64_t>(tok.size()) - 1);
      slot_of.push_back(s);
      length.push_back(p.length);
      budget.push_back(p.budget);
      key.push_back(stream_key(o_.seed, o_.first_prompt_index + p.index));
    }
    const int64_t total = static_cast<int64_t>(tok.size());
    auto dev = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(m_.device); };
    SlotForward f;
    f.position_ids = dev(pos).view({1, total});
    f.write_slot = dev(slot);
    f.write_column = f.position_ids.view({total});
    const bool window_cuts = window_ > 0 && total > window_;
    if (group.size() > 1 || total <= kMaxPackedTokens || window_cuts) {
      // Causal within each prompt, blind across prompts, Mistral's window.
      auto s = dev(seg);
      auto q = f.position_ids.view({total, 1}), k = f.position_ids.view({1, total});
      auto allowed = (s.view({total, 1}) == s.view({1, total})).logical_and(k <= q);
      if (window_ > 0) allowed = allowed.logical_and(q - k < window_);
      f.mask = allowed.view({1, 1, total, total});
    }
    ForwardOptions fwd;
    fwd.cache = &cache_;
    fwd.slots = &f;
    auto hidden = m_.lm->hidden_states(dev(tok).view({1, total}), at::Tensor(), fwd).squeeze(0).index_select(0, dev(last));
    auto logits = product(hidden, weight_.t()).to(at::kFloat);

    // The slots start over: the prompt's length, budget and stream; nothing generated.
    auto sl = dev(slot_of);
    length_.index_copy_(0, sl, dev(length));
    budget_.index_copy_(0, sl, dev(budget));
    key_.index_copy_(0, sl, dev(key));
    generated_.index_fill_(0, sl, 0);
    stopped_.index_fill_(0, sl, false);
    done_.index_fill_(0, sl, false);
    if (seen_.defined()) {
      seen_.index_fill_(0, sl, false);
      seen_.index_put_({f.write_slot, dev(tok)}, at::ones({total}, seen_.options()));
    }
    auto seen = seen_.defined() ? seen_.index_select(0, sl) : at::Tensor();
    auto next = choose_tokens(logits, seen, key_.index_select(0, sl), generated_.index_select(0, sl), o_);
    record(sl, next, /*fed=*/false);
  }

  // One decode step of slots [0, rows), reading `columns` cache columns.
  void step(int64_t rows, int64_t columns) {
    auto pos = length_.narrow(0, 0, rows).view({rows, 1});
    auto cols = columns_.narrow(0, 0, columns).view({1, columns});
    // A slot's own sequence, its window, and always its own column, so that an idle slot (whose
    // length may sit anywhere) never has an empty row (NaN).
    auto allowed = cols <= pos;
    if (window_ > 0) allowed = allowed.logical_and(pos - cols < window_);
    allowed = allowed.logical_or(cols == pos);
    SlotForward f;
    f.position_ids = pos;
    f.mask = allowed.view({rows, 1, 1, columns});
    f.write_slot = columns_.narrow(0, 0, rows);
    f.write_column = pos.view({rows});
    f.read_slots = rows;
    f.read_columns = columns;
    ForwardOptions fwd;
    fwd.cache = &cache_;
    fwd.slots = &f;
    auto hidden = m_.lm->hidden_states(next_.narrow(0, 0, rows).view({rows, 1}), at::Tensor(), fwd).select(1, 0);
    auto logits = product(hidden, weight_.t()).to(at::kFloat);
    auto seen = seen_.defined() ? seen_.narrow(0, 0, rows) : at::Tensor();
    auto next = choose_tokens(logits, seen, key_.narrow(0, 0, rows), generated_.narrow(0, 0, rows), o_);
    record(columns_.narrow(0, 0, rows), next, /*fed=*/true);
  }

  // Moves the sequences of slots src[i] (their first `columns` cache columns, their state) into
  // the free slots dst[i]; the sources become free.
  void move(const std::vector<int64_t>& src, const std::vector<int64_t>& dst, int64_t columns) {
    auto from = at::tensor(src, at::kLong).to(m_.device), to = at::tensor(dst, at::kLong).to(m_.device);
    for (auto& c : cache_) c.move_slots(from, to, columns);
    for (auto* t : {&length_, &generated_, &budget_, &key_, &next_, &done_, &stopped_, &out_, &seen_})
      if (t->defined()) t->index_copy_(0, to, t->index_select(0, from));
    release(from);
  }

  // Marks slots free: finished, and at length 0 (an idle row's position then stays inside any
  // step's columns, so its attention row is never empty).
  void release(const at::Tensor& slots) {
    done_.index_fill_(0, slots, true);
    length_.index_fill_(0, slots, 0);
  }
  void release(const std::vector<int64_t>& slots) {
    if (!slots.empty()) release(at::tensor(slots, at::kLong).to(m_.device));
  }

  // The finished flags of slots [0, rows), on the host.
  std::vector<bool> finished(int64_t rows) const {
    auto d = done_.narrow(0, 0, rows).to(at::kCPU);
    std::vector<bool> out(rows);
    for (int64_t s = 0; s < rows; ++s) out[s] = d.data_ptr<bool>()[s];
    return out;
  }

  // A finished slot's tokens and finish reason.
  std::pair<std::vector<int32_t>, std::string> result(int64_t slot) const {
    const int64_t n = generated_[slot].item<int64_t>();
    auto t = out_[slot].narrow(0, 0, n).to(at::kCPU).to(at::kInt).contiguous();
    std::vector<int32_t> tokens(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + n);
    return {std::move(tokens), stopped_[slot].item<bool>() ? "stop" : "length"};
  }

 private:
  static int64_t sliding_window(const ModelConfig& c) {
    return c.architecture == "GPTNeoXForCausalLM" ? 0 : c.sliding_window;
  }

  // Records the chosen tokens of slots `sl`: a running slot appends its token unless it is a stop
  // token, and finishes at a stop token or at its budget. fed: this step's input was the slots'
  // previous token, now in the cache (a decode step; a prefill set the lengths itself).
  void record(const at::Tensor& sl, const at::Tensor& next, bool fed) {
    auto running = done_.index_select(0, sl).logical_not();
    auto count = generated_.index_select(0, sl);
    // A finished slot writes past its tokens (out_ has a spare column), where nothing reads.
    out_.index_put_({sl, count}, next);
    // A broadcast compare, not at::isin (whose sorting path may sync with the host: not in a graph).
    auto is_stop = stop_ids_.numel() ? next.unsqueeze(-1).eq(stop_ids_).any(-1) : at::zeros_like(running);
    auto appended = running.logical_and(is_stop.logical_not());
    count = count + appended;
    generated_.index_copy_(0, sl, count);
    stopped_.index_copy_(0, sl, stopped_.index_select(0, sl).logical_or(running.logical_and(is_stop)));
    done_.index_copy_(0, sl, running.logical_not().logical_or(is_stop).logical_or(count >= budget_.index_select(0, sl)));
    if (fed) length_.index_copy_(0, sl, length_.index_select(0, sl) + running);
    next_.index_copy_(0, sl, next);
    if (seen_.defined()) seen_.index_put_({sl, next}, seen_.index({sl, next}).logical_or(appended));
  }

  const ModelImpl& m_;
  const std::vector<std::vector<int32_t>>& prompts_;
  const GenerateOptions& o_;
  int64_t window_;
  std::vector<LayerCache> cache_;
  at::Tensor weight_, columns_, stop_ids_;
  // Per slot: tokens in the cache, tokens generated, the budget, the stream key, the token to feed
  // next, finished, finished by a stop token, the generated tokens, the tokens seen (penalty).
  at::Tensor length_, generated_, budget_, key_, next_, done_, stopped_, out_, seen_;
};

// The reference without a cache: each prompt alone, the whole sequence recomputed at every step,
// the same token choice.
void generate_uncached(const ModelImpl& m, const std::vector<std::vector<int32_t>>& prompts, const std::vector<Prompt>& jobs,
                       const GenerateOptions& o, GenerateResult& result) {
  auto lg = at::TensorOptions().dtype(at::kLong).device(m.device);
  auto weight = m.lm->output_weight();
  for (const auto& p : jobs) {
    std::vector<int64_t> seq(prompts[p.index].begin(), prompts[p.index].end());
    at::Tensor seen;
    if (o.repetition_penalty != 1.0) {
      seen = at::zeros({1, m.config.vocab_size}, lg.dtype(at::kBool));
      seen.index_fill_(1, at::tensor(seq, at::kLong).to(m.device), true);
    }
    auto key = at::full({1}, stream_key(o.seed, o.first_prompt_index + p.index), lg);
    for (int64_t t = 0; t < p.budget; ++t) {
      const int64_t T = static_cast<int64_t>(seq.size());
      auto ids = at::tensor(seq, at::kLong).to(m.device).view({1, T});
      ForwardOptions fwd;
      fwd.right_padded = true;
      auto hidden = m.lm->hidden_states(ids, at::ones({1, T}, lg), fwd).select(1, T - 1);
      auto logits = product(hidden, weight.t()).to(at::kFloat);
      const int64_t next = choose_tokens(logits, seen, key, at::full({1}, t, lg), o).item<int64_t>();
      if (std::find(o.stop_token_ids.begin(), o.stop_token_ids.end(), next) != o.stop_token_ids.end()) {
        result.finish_reasons[p.index] = "stop";
        break;
      }
      result.tokens[p.index].push_back(static_cast<int32_t>(next));
      seq.push_back(next);
      if (seen.defined()) seen.index_fill_(1, at::full({1}, next, lg), true);
    }
  }
}

}  // namespace

GenerateResult Model::generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                               GenerateProgress* progress) const {
  auto& m = *impl_;
  const int64_t n = static_cast<int64_t>(prompts.size());
  if (n == 0) return {};
  check_options(o);
  check_token_ids(prompts, o, m.config.vocab_size);
  const bool per_prompt = !o.prompt_max_new_tokens.empty();
  if (per_prompt && static_cast<int64_t>(o.prompt_max_new_tokens.size()) != n)
    throw std::invalid_argument("generate: promptMaxNewTokens has " + std::to_string(o.prompt_max_new_tokens.size()) + " entries for " + std::to_string(n) + " prompts");
  if (o.max_new_tokens <= 0 && o.max_length <= 0 && !per_prompt) throw std::invalid_argument("generate: set max_new_tokens or max_length");
  GenerateResult result;
  result.tokens.resize(n);
  result.finish_reasons.assign(n, "length");
  // Each prompt's budget from its own length (not a batch's longest: a prompt's output must not
  // depend on its neighbours).
  std::vector<Prompt> jobs;
  int64_t capacity = 0, max_budget = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t L = static_cast<int64_t>(prompts[i].size());
    if (L == 0) throw std::invalid_argument("generate: prompt " + std::to_string(i) + " is empty");
    int64_t budget = per_prompt ? o.prompt_max_new_tokens[i] : o.max_new_tokens > 0 ? o.max_new_tokens : INT64_MAX;
    if (o.max_length > 0) budget = std::min(budget, o.max_length - L);
    if (budget <= 0) {
      if (progress) progress->prompts += 1;
      continue;
    }
    jobs.push_back({i, L, budget});
    capacity = std::max(capacity, L + budget);
    max_budget = std::max(max_budget, budget);
  }
  if (jobs.empty()) return result;
  torch::NoGradGuard no_grad;
  if (!o.use_cache) {
    generate_uncached(m, prompts, jobs, o, result);
    return result;
  }

  const int64_t slots = o.slots > 0 ? std::min<int64_t>(o.slots, static_cast<int64_t>(jobs.size())) : static_cast<int64_t>(jobs.size());
  DecodeGraphs graphs(m.device);  // on CUDA: the decode runs on a stream of its own from here
  SlotDecoder decoder(m, prompts, o, slots, capacity, max_budget);
  std::deque<Prompt> waiting(jobs.begin(), jobs.end());
  // The host's view of each slot: its prompt (-1: free), and upper bounds of its cache length and
  // of its tokens generated (exact while it runs; a stop token ends it earlier, unseen until a look).
  std::vector<int64_t> occupant(slots, -1), length_bound(slots, 0), generated_bound(slots, 0), last_column(slots, 0);
  std::vector<int64_t> budget(slots, 0);

  // Fills the free slots, lowest first (so the running rows stay a prefix and an emptying batch
  // shrinks), packing prompts into prefills of up to kMaxPackedTokens tokens.
  // Returns whether it prefilled any.
  auto fill = [&]() {
    const size_t before = waiting.size();
    std::vector<std::pair<int64_t, Prompt>> group;
    int64_t tokens = 0;
    auto flush = [&]() {
      if (!group.empty()) decoder.prefill(group);
      group.clear();
      tokens = 0;
    };
    for (int64_t s = 0; s < slots && !waiting.empty(); ++s) {
      if (occupant[s] >= 0) continue;
      const Prompt p = waiting.front();
      waiting.pop_front();
      if (!group.empty() && tokens + p.length > kMaxPackedTokens) flush();
      group.emplace_back(s, p);
      tokens += p.length;
      occupant[s] = p.index;
      length_bound[s] = p.length;
      generated_bound[s] = 1;  // the prefill chose the first token
      last_column[s] = p.length + p.budget - 1;  // the last column a running slot writes
      budget[s] = p.budget;
    }
    flush();
    return waiting.size() != before;
  };
  // Takes the finished prompts' tokens and frees their slots.
  auto collect = [&](int64_t rows) {
    auto finished = decoder.finished(rows);
    std::vector<int64_t> freed;
    for (int64_t s = 0; s < rows; ++s) {
      if (occupant[s] < 0 || !finished[s]) continue;
      auto [tokens, reason] = decoder.result(s);
      const int64_t index = occupant[s];
      if (progress) progress->tokens += static_cast<int64_t>(tokens.size()), progress->prompts += 1;
      result.tokens[index] = std::move(tokens);
      result.finish_reasons[index] = reason;
      occupant[s] = -1;
      freed.push_back(s);
    }
    decoder.release(freed);
  };
  // Moves the highest running slots into the lowest free ones, so the running slots are
  // [0, running): after fill() this happens only once no prompt waits.
  auto compact = [&]() {
    std::vector<int64_t> src, dst;
    int64_t columns = 0;
    for (int64_t lo = 0, hi = slots - 1;; ++lo, --hi) {
      while (lo < slots && occupant[lo] >= 0) ++lo;
      while (hi >= 0 && occupant[hi] < 0) --hi;
      if (lo >= hi) break;
      src.push_back(hi), dst.push_back(lo);
      columns = std::max(columns, length_bound[hi] + 1);
      for (auto* v : {&occupant, &length_bound, &generated_bound, &last_column, &budget}) std::swap((*v)[lo], (*v)[hi]);
    }
    if (!src.empty()) decoder.move(src, dst, columns);
  };

  fill();
  const int64_t interval = check_interval(m.device);
  int64_t since_look = 0;
  for (;;) {
    // A prefill's first token can be a stop token, or the whole budget. Where a look costs nothing
    // (the CPU) the host looks again after each refill, so that no finished row is ever computed;
    // on CUDA such a row waits, idle, for the next look.
    do {
      collect(slots);
    } while (fill() && interval == 1);
    compact();
    int64_t rows = 0;
    for (int64_t s = 0; s < slots; ++s)
      if (occupant[s] >= 0) rows = s + 1;
    if (rows == 0) break;
    bool spent = false;  // a slot whose budget the prefill used up: take it before stepping
    for (int64_t s = 0; s < rows; ++s) spent = spent || (occupant[s] >= 0 && generated_bound[s] >= budget[s]);
    if (spent) continue;
    // Decode until the next look: every `interval` steps, or when a running slot's budget is spent.
    for (since_look = 0; since_look < interval; ++since_look) {
      int64_t columns = 0;
      for (int64_t s = 0; s < rows; ++s) columns = std::max(columns, length_bound[s] + 1);
      const auto [step_rows, step_columns] = graphs.bucket(rows, columns, slots, capacity);
      graphs.run(step_rows, step_columns, [&, r = step_rows, c = step_columns]() { decoder.step(r, c); });
      result.steps += 1;
      result.row_steps += step_rows;
      bool spent = false;
      for (int64_t s = 0; s < rows; ++s) {
        if (occupant[s] < 0) continue;
        length_bound[s] = std::min(length_bound[s] + 1, last_column[s]);
        generated_bound[s] += 1;
        spent = spent || generated_bound[s] >= budget[s];
      }
      if (spent) break;
    }
  }
  result.graph_replays = graphs.replays();
  return result;
}

}  // namespace rpo
