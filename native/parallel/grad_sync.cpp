// Bucketed gradient all-reduce overlapped with backward (what DDP's Reducer does, for the one
// model we train): parameters are grouped, in reverse order (backward reaches the last layers
// first), into float32 buckets of about bucket_bytes; a post-hook on each parameter's gradient
// accumulator counts the bucket down, and the last parameter to arrive copies the bucket's
// gradients into its buffer and launches its all-reduce while backward goes on with earlier
// layers. finish() launches what never arrived (unused parameters, a rank with no micro-batch),
// waits, and writes the sums back.
//
// ZeRO-2 (reduce_to_owners): buckets are also cut where the owner changes, and each is reduced to
// its owner only. Its gradients move into the bucket's buffer at launch (every rank frees them
// then: the buffer is what is in flight), and the buffer is dropped as soon as the reduce is seen
// complete (polled from the next hook, or at finish): the owner keeps the sums as its gradients
// (views of the buffer in float32), the others keep nothing. So during backward a rank holds the
// gradients of the buckets not yet launched, the buffers in flight, and its own share's sums.
//
// The sum, not the mean: each rank's micro-step loss is already scaled by its pairs / the global
// batch's pairs (lib/train/loop.ts), so the sum over ranks is the single-process gradient.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <mutex>
#include <stdexcept>

#include "api.h"
#include "parallel/dist.h"
#include "parallel/process_group_impl.h"
#include "parallel/ready_hook.h"
#include "model/model_impl.h"
#include "train/ppo_step.h"
#include "train/split_backward.h"
#include "train/trainer_impl.h"

namespace rpo {

#ifdef RPO_WITH_GLOO

namespace {

struct Bucket {
  std::vector<size_t> params;   // indices into GradSyncImpl::params
  std::vector<int64_t> offset;  // of each parameter in the buffer
  int64_t numel = 0;
  at::Tensor buffer;  // float32, on the collective's device
  int root = -1;  // ZeRO-2: the rank this bucket is reduced to (all of its parameters' owner); -1: all-reduced
  size_t pending = 0;
  // launched: sent this step; late: a gradient grew after that; settled: a ZeRO-2 bucket's
  // reduce seen complete and its buffer dropped (the owner's sums now in its gradients).
  bool launched = false, late = false, settled = false;
  c10::intrusive_ptr<c10d::Work> work;
};

}  // namespace

class GradSyncImpl {
 public:
  GradSyncImpl(std::shared_ptr<Model> p, std::shared_ptr<ProcessGroup> g, int64_t bucket_bytes)
      : policy(std::move(p)), group(std::move(g)) {
    if (bucket_bytes < 1) throw std::invalid_argument("GradSync: bucket bytes must be positive");
    auto& pm = policy->impl();
    // The trained parameters: with LoRA the adapters only (the frozen base has no gradient).
    for (auto& [name, t] : pm.trainable())
      if (t.requires_grad()) params.push_back(t);
    bucket_of.assign(params.size(), 0);
    fired.assign(params.size(), false);
    cap = std::max<int64_t>(1, bucket_bytes / 4);
    make_buckets(std::vector<int>(params.size(), -1));
    for (size_t k = 0; k < params.size(); ++k) {
      // The accumulator is held here: a parameter keeps only a weak reference to it, and a new
      // one (without the hook) would be made for the next backward if this one were freed.
      auto acc = torch::autograd::impl::grad_accumulator(params[k]);
      keys.push_back(acc->add_post_hook(std::make_unique<ReadyHook>([this, k] { on_ready(k); })));
      accumulators.push_back(std::move(acc));
    }
  }

  // Parameters in reverse order into buckets of about `cap` elements; a bucket holds one root's
  // parameters only (ZeRO-2: owners are contiguous, so this adds at most world - 1 cuts).
  void make_buckets(const std::vector<int>& root_of) {
    buckets.clear();
    for (size_t k = params.size(); k-- > 0;) {
      if (buckets.empty() || buckets.back().root != root_of[k] ||
          (buckets.back().numel > 0 && buckets.back().numel + params[k].numel() > cap)) {
        buckets.emplace_back();
        buckets.back().root = root_of[k];
      }
      auto& b = buckets.back();
      b.params.push_back(k);
      b.offset.push_back(b.numel);
      b.numel += params[k].numel();
      bucket_of[k] = buckets.size() - 1;
    }
  }

  void reduce_to_owners(const ZeroShard& zero) {
    std::lock_guard<std::mutex> lock(mutex);
    if (armed) throw std::logic_error("GradSync.reduce_to_owners: armed (call it between steps)");
    std::vector<int> root_of(params.size());
    for (size_t k = 0; k < params.size(); ++k) {
      root_of[k] = zero.owner_of(params[k].unsafeGetTensorImpl());
      if (root_of[k] < 0) throw std::invalid_argument("GradSync.reduce_to_owners: a trained parameter the ZeroShard's optimizer does not hold");
    }
    make_buckets(root_of);
  }

  ~GradSyncImpl() {
    for (size_t k = 0; k < accumulators.size(); ++k) accumulators[k]->del_post_hook(keys[k]);
    if (value_head_of) value_head_of->impl().ppo->sum_over_ranks = nullptr;
  }

  void attach_value_head(std::shared_ptr<Trainer> trainer) {
    std::lock_guard<std::mutex> lock(mutex);
    if (armed) throw std::logic_error("GradSync.attach_value_head: armed (call it between steps)");
    if (!trainer->impl().ppo) throw std::invalid_argument("GradSync.attach_value_head: the trainer has no value head (loss " + trainer->impl().options.loss.name + ")");
    if (trainer->impl().policy.get() != policy.get()) throw std::invalid_argument("GradSync.attach_value_head: the trainer trains another policy");
    value_head_of = std::move(trainer);
    auto g = group;
    value_head_of->impl().ppo->sum_over_ranks = [g](const at::Tensor& local) {
      auto& pg = g->impl();
      std::vector<at::Tensor> ts{pg.to_comm(local.to(at::kFloat).contiguous().clone())};
      pg.run(pg.backend->allreduce(ts), "ppo advantage statistics");
      return ts[0].to(local.device());
    };
  }

  // ppo: the value head's gradients (a few thousand elements) summed over the ranks in one
  // all-reduce, with a count of the ranks that had any, so a head no rank trained keeps none.
  void sum_value_head() {
    if (!value_head_of) return;
    auto ps = value_head_of->impl().ppo->head->parameters();
    int64_t n = 1;
    for (const auto& p : ps) n += p.numel();
    auto& pg = group->impl();
    auto buf = at::zeros({n}, at::kFloat);
    int64_t off = 0;
    bool any = false;
    for (const auto& p : ps) {
      if (p.grad().defined()) {
        buf.narrow(0, off, p.numel()).copy_(p.grad().reshape({-1}));
        any = true;
      }
      off += p.numel();
    }
    buf[n - 1] = any ? 1.0f : 0.0f;
    std::vector<at::Tensor> ts{pg.to_comm(buf)};
    pg.run(pg.backend->allreduce(ts), "value head gradient all-reduce");
    auto sum = ts[0].cpu();
    if (sum[n - 1].item<float>() == 0.0f) return;
    off = 0;
    for (auto& p : ps) {
      auto s = sum.narrow(0, off, p.numel()).view(p.sizes()).to(p.device(), p.scalar_type());
      if (p.grad().defined()) p.mutable_grad().copy_(s);
      else p.mutable_grad() = s.clone();
      off += p.numel();
    }
  }

  void arm() {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto& b : buckets) {
      if (b.launched && b.work) wait(b);  // an unfinished step (an error between arm and finish)
      b.pending = b.params.size();
      b.launched = b.late = b.settled = false;
      b.work.reset();
      if (b.root >= 0) b.buffer.reset();
    }
    fired.assign(params.size(), false);
    launched_early = settled_early = 0;
    armed = true;
  }

  GradSyncResult finish() {
    std::lock_guard<std::mutex> lock(mutex);
    GradSyncResult r;
    r.launched_early = launched_early;
    armed = false;
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& b : buckets) {
      if (b.launched && b.late) {
        // A parameter's gradient grew after its bucket left (a parameter reached twice by
        // backward): send the bucket again. Every rank runs the same graph, so all do this.
        // ZeRO-2: what is sent again is what grew since (the others freed what they sent; the
        // owner's gradients hold the first sums), so the owner gets first sums + the growth.
        if (b.root >= 0) settle(b);
        else wait(b);
        b.launched = b.settled = false;
        ++r.resent;
      }
      if (!b.launched) launch(b);
    }
    for (auto& b : buckets) {
      if (b.root >= 0) settle(b);
      else wait(b);
    }
    r.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto& b : buckets) {
      r.bytes += b.numel * 4;
      if (b.root >= 0) continue;  // ZeRO-2: settled above
      for (size_t j = 0; j < b.params.size(); ++j) {
        auto& p = params[b.params[j]];
        auto sum = b.buffer.narrow(0, b.offset[j], p.numel()).view(p.sizes());
        if (p.grad().defined()) {
          p.mutable_grad().copy_(sum);
        } else {
          p.mutable_grad() = sum.to(p.device(), p.scalar_type()).clone();
        }
      }
    }
    r.buckets = static_cast<int64_t>(buckets.size());
    r.settled_early = settled_early;
    sum_value_head();
    return r;
  }

 private:
  void on_ready(size_t k) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;
    // rdpo, rorpo: the rationale forward's own backward runs first (train/split_backward.h); the
    // gradient is complete only once the response forward's backward reaches the parameter.
    if (in_partial_backward()) return;
    settle_completed();
    auto& b = buckets[bucket_of[k]];
    if (fired[k]) {
      if (b.launched) b.late = true;
      return;
    }
    fired[k] = true;
    if (--b.pending == 0) {
      launch(b);
      ++launched_early;
    }
  }

  void launch(Bucket& b) {
    auto& pg = group->impl();
    if (!b.buffer.defined()) b.buffer = pg.to_comm(at::empty({b.numel}, at::kFloat));
    for (size_t j = 0; j < b.params.size(); ++j) {
      auto& p = params[b.params[j]];
      auto dst = b.buffer.narrow(0, b.offset[j], p.numel());
      if (p.grad().defined()) dst.copy_(p.grad().reshape({-1}));
      else dst.zero_();
      // ZeRO-2: the buffer now carries this rank's part of the sum; the gradient goes (on the
      // owner too: its sums come back in the buffer).
      if (b.root >= 0) p.mutable_grad().reset();
    }
    std::vector<at::Tensor> ts{b.buffer};
    try {
      if (b.root >= 0) {
        c10d::ReduceOptions ro;
        ro.rootRank = b.root;
        b.work = pg.backend->reduce(ts, ro);
      } else {
        b.work = pg.backend->allreduce(ts);
      }
    } catch (const std::exception& e) {
      throw pg.collective_error("gradient all-reduce", e.what());
    }
    b.launched = true;
  }

  void wait(Bucket& b) {
    if (!b.work) return;
    auto w = std::move(b.work);
    b.work.reset();
    group->impl().run(w, "gradient all-reduce");
  }

  // ZeRO-2: waits for the bucket's reduce, then drops its buffer; the owner first adds the sums
  // to its gradients (a gradient that grew since launch, or the first sums of a bucket sent
  // again, is kept and added to), as float32 views of the buffer when nothing is there to add to.
  void settle(Bucket& b) {
    if (!b.launched || b.settled) return;
    wait(b);
    if (b.root == group->rank()) {
      for (size_t j = 0; j < b.params.size(); ++j) {
        auto& p = params[b.params[j]];
        auto sum = b.buffer.narrow(0, b.offset[j], p.numel()).view(p.sizes());
        if (p.grad().defined()) p.mutable_grad() = p.grad() + sum.to(p.grad().device(), p.grad().scalar_type());
        else if (sum.device() == p.device() && sum.scalar_type() == p.scalar_type()) p.mutable_grad() = sum;
        else p.mutable_grad() = sum.to(p.device(), p.scalar_type());
      }
    }
    b.buffer.reset();
    b.settled = true;
  }

  // From backward's hooks: the ZeRO-2 buckets whose reduce has completed are settled now, so
  // their buffers do not outlive the collective by the rest of backward.
  void settle_completed() {
    for (auto& b : buckets)
      if (b.root >= 0 && b.launched && !b.settled && b.work && b.work->isCompleted()) {
        settle(b);
        ++settled_early;
      }
  }

 public:
  std::shared_ptr<Model> policy;
  std::shared_ptr<ProcessGroup> group;
  std::shared_ptr<Trainer> value_head_of;  // ppo (attach_value_head)
  std::vector<at::Tensor> params;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> keys;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;
  std::vector<bool> fired;
  std::mutex mutex;
  int64_t cap = 1;
  bool armed = false;
  int64_t launched_early = 0;
  int64_t settled_early = 0;
};

GradSync::GradSync(std::shared_ptr<Model> policy, std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes)
    : impl_(std::make_unique<GradSyncImpl>(std::move(policy), std::move(group), bucket_bytes)) {}
GradSync::~GradSync() = default;
void GradSync::arm() { impl_->arm(); }
GradSyncResult GradSync::finish() { return impl_->finish(); }
void GradSync::reduce_to_owners(const ZeroShard& zero) { impl_->reduce_to_owners(zero); }
void GradSync::attach_value_head(std::shared_ptr<Trainer> trainer) { impl_->attach_value_head(std::move(trainer)); }

#else

class GradSyncImpl {};
GradSync::GradSync(std::shared_ptr<Model>, std::shared_ptr<ProcessGroup>, int64_t) { throw std::runtime_error(dist_unavailable_reason()); }
GradSync::~GradSync() = default;
void GradSync::arm() {}
GradSyncResult GradSync::finish() { return {}; }
void GradSync::reduce_to_owners(const ZeroShard&) {}
void GradSync::attach_value_head(std::shared_ptr<Trainer>) {}

#endif

}  // namespace rpo
