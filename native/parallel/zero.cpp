// ZeRO stages 1 and 2 over a ProcessGroup (dist.h): the optimizer's state (and with stage 2 the
// gradients) for 1/N of the parameters.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <stdexcept>
#include <string>
#include <unordered_map>

#include "api.h"
#include "parallel/dist.h"
#include "parallel/process_group_impl.h"
#include "train/optimizer.h"
#include "train/trainer_impl.h"

namespace rpo {

#ifdef RPO_WITH_GLOO

class ZeroShardImpl {
 public:
  ZeroShardImpl(std::shared_ptr<Trainer> t, std::shared_ptr<ProcessGroup> g, int stage) : trainer(std::move(t)), group(std::move(g)) {
    if (stage != 1 && stage != 2) throw std::invalid_argument("ZeRO: stage must be 1 or 2, not " + std::to_string(stage));
    plan.stage = stage;
    opt = trainer->impl().optimizer.get();
    if (opt->kind_ != TrainOptimizer::Kind::kFusedAdamW)
      throw std::invalid_argument("ZeRO: the sharded optimizer runs the fused AdamW (optimizer=AdamW, precision fp32, bf16-pure or "
                                  "bf16-mixed); this trainer runs " + opt->kind_name());
    const int world = group->world_size(), rank = group->rank();
    const size_t n = opt->params_.size();
    for (const auto& p : opt->params_) plan.total_numel += p.numel();
    // Contiguous shares balanced by elements: parameter i goes to the rank its middle element
    // falls in when the elements are cut into `world` equal ranges.
    owner.resize(n);
    int64_t before = 0;
    for (size_t i = 0; i < n; ++i) {
      const int64_t mid = before + opt->params_[i].numel() / 2;
      owner[i] = static_cast<int>(std::min<int64_t>(world - 1, mid * world / std::max<int64_t>(1, plan.total_numel)));
      before += opt->params_[i].numel();
    }
    opt->owned_.assign(n, false);
    for (size_t i = 0; i < n; ++i) {
      opt->owned_[i] = owner[i] == rank;
      if (opt->owned_[i]) {
        plan.owned_params += 1;
        plan.owned_numel += opt->params_[i].numel();
      } else {
        opt->adam_[i] = AdamParamState{};  // a loaded checkpoint's state of another rank's share
      }
    }
    const bool mixed = opt->precision_.mode == Precision::kMixed;
    const int64_t elem = mixed ? 4 : opt->params_.empty() ? 4 : opt->params_[0].element_size();
    plan.state_bytes_per_element = mixed ? 12 : 2 * elem;
    plan.grad_bytes_per_element = opt->params_.empty() ? 4 : opt->params_[0].element_size();
    for (size_t i = 0; i < n; ++i) owner_by_impl[opt->params_[i].unsafeGetTensorImpl()] = owner[i];
    if (stage == 2)
      opt->sum_norms_ = [this](const at::Tensor& local) {
        auto& pg = group->impl();
        std::vector<at::Tensor> ts{pg.to_comm(local.clone())};
        pg.run(pg.backend->allreduce(ts), "ZeRO-2 gradient norms");
        return ts[0].to(local.device());
      };
  }

  ~ZeroShardImpl() {
    if (opt) {
      opt->owned_.clear();
      opt->sum_norms_ = nullptr;
    }
  }

  void broadcast_params() {
    at::NoGradGuard no_grad;
    auto& pg = group->impl();
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (size_t i = 0; i < owner.size(); ++i) {
      std::vector<at::Tensor> ts{opt->params_[i].detach()};
      c10d::BroadcastOptions bo;
      bo.rootRank = owner[i];
      works.push_back(pg.backend->broadcast(ts, bo));
    }
    for (auto& w : works) pg.run(w, "ZeRO parameter broadcast");
  }

  void gather_state() {
    at::NoGradGuard no_grad;
    auto& pg = group->impl();
    const int rank = group->rank();
    const bool mixed = opt->precision_.mode == Precision::kMixed;
    for (size_t i = 0; i < owner.size(); ++i) {
      const int o = owner[i];
      if (o == 0 || (rank != 0 && rank != o)) continue;
      const int tag = static_cast<int>(i) * 4;
      auto& p = opt->params_[i];
      if (rank == o) {
        const auto& st = opt->adam_[i];
        std::vector<at::Tensor> hdr{at::tensor({st.defined() ? 1.0 : 0.0, static_cast<double>(st.step)}, at::kDouble).to(p.device())};
        pg.run(pg.backend->send(hdr, 0, tag), "ZeRO state gather");
        if (!st.defined()) continue;
        std::vector<at::Tensor> m{st.exp_avg}, v{st.exp_avg_sq};
        pg.run(pg.backend->send(m, 0, tag + 1), "ZeRO state gather");
        pg.run(pg.backend->send(v, 0, tag + 2), "ZeRO state gather");
        if (mixed) {
          std::vector<at::Tensor> w{st.master};
          pg.run(pg.backend->send(w, 0, tag + 3), "ZeRO state gather");
        }
      } else {
        std::vector<at::Tensor> hdr{at::empty({2}, at::TensorOptions().dtype(at::kDouble).device(p.device()))};
        pg.run(pg.backend->recv(hdr, o, tag), "ZeRO state gather");
        auto h = hdr[0].cpu();
        if (h[0].item<double>() == 0.0) continue;
        auto& st = opt->adam_state(i);
        st.step = static_cast<int64_t>(h[1].item<double>());
        st.step_t.fill_(static_cast<double>(st.step));
        std::vector<at::Tensor> m{st.exp_avg}, v{st.exp_avg_sq};
        pg.run(pg.backend->recv(m, o, tag + 1), "ZeRO state gather");
        pg.run(pg.backend->recv(v, o, tag + 2), "ZeRO state gather");
        if (mixed) {
          std::vector<at::Tensor> w{st.master};
          pg.run(pg.backend->recv(w, o, tag + 3), "ZeRO state gather");
        }
      }
    }
  }

  void release_state() {
    for (size_t i = 0; i < owner.size(); ++i)
      if (!opt->owned_[i]) opt->adam_[i] = AdamParamState{};
  }

  int64_t state_numel() const {
    int64_t n = 0;
    for (const auto& st : opt->adam_)
      if (st.defined()) n += st.exp_avg.numel();
    return n;
  }

  std::shared_ptr<Trainer> trainer;
  std::shared_ptr<ProcessGroup> group;
  TrainOptimizer* opt = nullptr;
  std::vector<int> owner;
  std::unordered_map<const void*, int> owner_by_impl;
  ZeroPlan plan;
};

ZeroShard::ZeroShard(std::shared_ptr<Trainer> trainer, std::shared_ptr<ProcessGroup> group, int stage)
    : impl_(std::make_unique<ZeroShardImpl>(std::move(trainer), std::move(group), stage)) {}
ZeroShard::~ZeroShard() = default;
const ZeroPlan& ZeroShard::plan() const { return impl_->plan; }
void ZeroShard::broadcast_params() { impl_->broadcast_params(); }
void ZeroShard::gather_state() { impl_->gather_state(); }
void ZeroShard::release_state() { impl_->release_state(); }
int64_t ZeroShard::state_numel() const { return impl_->state_numel(); }
int ZeroShard::owner_of(const void* tensor_impl) const {
  auto it = impl_->owner_by_impl.find(tensor_impl);
  return it == impl_->owner_by_impl.end() ? -1 : it->second;
}

#else

class ZeroShardImpl {};
ZeroShard::ZeroShard(std::shared_ptr<Trainer>, std::shared_ptr<ProcessGroup>, int) { throw std::runtime_error(dist_unavailable_reason()); }
ZeroShard::~ZeroShard() = default;
const ZeroPlan& ZeroShard::plan() const {
  static const ZeroPlan none;
  return none;
}
void ZeroShard::broadcast_params() {}
void ZeroShard::gather_state() {}
void ZeroShard::release_state() {}
int64_t ZeroShard::state_numel() const { return 0; }
int ZeroShard::owner_of(const void*) const { return -1; }

#endif

}  // namespace rpo
