// ZeRO stage 3 (zero3.h): parameters, gradients and optimizer state sharded over the ranks.
//
// Mechanism: FSDP's storage free and refill. Every parameter keeps its tensor (its TensorImpl,
// shape, name and gradient accumulator), but its storage holds no bytes between uses. To use a
// unit, its flat shards are all-gathered into one buffer and each parameter's storage is pointed
// at its slice of it; to free the unit, the storages are emptied again. Autograd's saved tensors
// refer to the parameters' storages, not to copies, so a backward that gathers the unit again
// first finds the saved weights back without keeping them alive in between; this works the
// same with activation checkpointing on (the block's recompute gathers) and off (the layer's
// own saved tensors). The alternative, a per-layer autograd function that recomputes every
// layer in backward, would force checkpointing's extra forward on runs that turned it off.
//
// Order of work for a unit u (layer index + 1; unit 0 is everything outside the layers):
//   forward:  gather(u) (waiting for its prefetch), prefetch(u + 1), run, release(u)
//   backward: an identity node on u's output runs before u's backward: gather(u), prefetch the
//             unit backward reaches next; each parameter's AccumulateGrad post-hook counts
//             the unit down, and the last one reduce-scatters the unit's gradients (float32,
//             summed) to their owners and releases the unit.
// Every rank runs the same forwards and backwards (lib/train: lockstep micro-steps), so the
// collectives are issued in the same order everywhere.
#include "parallel/zero3.h"

#include <ATen/ATen.h>
#include <c10/core/StorageImpl.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/autograd/variable.h>

#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <stdexcept>
#include <string>

#include "api.h"
#include "model/model_impl.h"
#include "parallel/process_group_impl.h"
#include "parallel/ready_hook.h"
#include "parallel/zero3_units.h"
#include "train/optimizer.h"
#include "train/trainer_impl.h"

namespace rpo {

#ifdef RPO_WITH_GLOO

namespace {

// The unit of a parameter by its checkpoint name: 1 + n inside "layers.<n>.", else 0.
size_t unit_of_name(const std::string& name) {
  static const std::string key = "layers.";
  for (size_t pos = name.find(key); pos != std::string::npos; pos = name.find(key, pos + 1)) {
    if (pos > 0 && name[pos - 1] != '.') continue;
    size_t end = pos + key.size(), n = 0;
    bool digits = false;
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) {
      n = n * 10 + static_cast<size_t>(name[end] - '0');
      ++end;
      digits = true;
    }
    if (digits && end < name.size() && name[end] == '.') return n + 1;
  }
  return 0;
}

// Points parameter p's storage at its numel elements of `flat` from element `offset` (each
// parameter's storage holds a reference to flat's, so the buffer lives while any points into
// it); an undefined flat empties the storage.
void point_storage(const at::Tensor& p, const at::Tensor& flat, int64_t offset) {
  auto* si = p.unsafeGetTensorImpl()->unsafe_storage().unsafeGetStorageImpl();
  if (!flat.defined()) {
    si->set_data_ptr_noswap(c10::DataPtr(nullptr, p.device()));
    si->set_nbytes(0);
    return;
  }
  auto* keep = new c10::Storage(flat.storage());
  void* ptr = static_cast<char*>(flat.data_ptr()) + offset * flat.element_size();
  si->set_data_ptr_noswap(c10::DataPtr(ptr, keep, [](void* ctx) { delete static_cast<c10::Storage*>(ctx); }, flat.device()));
  si->set_nbytes(static_cast<size_t>(p.numel() * p.element_size()));
}

// RPO_TEST_KILL_AT_ALLGATHER=N (tests of a rank lost mid-collective): this process kills itself
// with SIGKILL right after launching its N-th parameter all-gather.
void maybe_die_in_allgather() {
  static const long at = [] {
    const char* v = std::getenv("RPO_TEST_KILL_AT_ALLGATHER");
    return v ? std::atol(v) : 0L;
  }();
  static long launched = 0;
  if (at > 0 && ++launched == at) std::raise(SIGKILL);
}

struct Unit {
  std::vector<size_t> members;  // indices into ShardedModel::params
  std::vector<int64_t> offset;  // of each member in the unit's flat
  int64_t numel = 0;            // the members' elements
  int64_t shard = 0;            // elements per rank: numel rounded up to a multiple of the world, / world
  at::Tensor w;                 // this rank's shard of the weights [shard], in the parameters' dtype
  // Gathering: the all-gathered buffer the members point into, or the all-gather under way.
  at::Tensor flat;
  c10::intrusive_ptr<c10d::Work> work;
  bool gathered = false;
  // Training: members whose gradient arrived in this backward; the float32 gradient shard
  // (summed over ranks and micro-steps); AdamW's state of the shard.
  size_t fired = 0;
  at::Tensor grad;
  at::Tensor m, v, master, step_t;
  int64_t step = 0;
};

// One model's parameters as units of flat shards (zero3_units.h's ParamUnits for its forwards).
class ShardedModel : public ParamUnits {
 public:
  ShardedModel(ModelImpl& model, std::shared_ptr<ProcessGroup> g, bool trained) : group(std::move(g)), trained_(trained) {
    at::NoGradGuard no_grad;
    const int64_t world = group->world_size(), rank = group->rank();
    size_t n_units = 1;
    for (auto& [name, p] : model.params) {
      names.push_back(name);
      params.push_back(p);
      n_units = std::max(n_units, unit_of_name(name) + 1);
    }
    units.resize(n_units);
    for (size_t k = 0; k < params.size(); ++k) {
      const auto& p = params[k];
      if (!p.is_contiguous() || p.storage_offset() != 0 || p.unsafeGetTensorImpl()->unsafe_storage().nbytes() != static_cast<size_t>(p.numel() * p.element_size()))
        throw std::invalid_argument("ZeRO-3: parameter " + names[k] + " does not own its storage (a view or shared tensor)");
      auto& u = units[unit_of_name(names[k])];
      u.members.push_back(k);
      u.offset.push_back(u.numel);
      u.numel += p.numel();
    }
    unit_of.resize(params.size());
    for (size_t i = 0; i < units.size(); ++i) {
      auto& u = units[i];
      if (u.members.empty()) throw std::invalid_argument("ZeRO-3: decoder layer " + std::to_string(i - 1) + " has no parameters");
      u.shard = (u.numel + world - 1) / world;
      auto full = at::zeros({u.shard * world}, params[u.members[0]].options().requires_grad(false));
      for (size_t j = 0; j < u.members.size(); ++j) {
        unit_of[u.members[j]] = i;
        full.narrow(0, u.offset[j], params[u.members[j]].numel()).copy_(params[u.members[j]].detach().reshape({-1}));
      }
      u.w = full.narrow(0, rank * u.shard, u.shard).clone();
    }
    // From here on the parameters hold no data but while a unit is gathered.
    for (auto& p : params) point_storage(p, at::Tensor(), 0);
    if (trained_) {
      for (size_t k = 0; k < params.size(); ++k) {
        if (!params[k].requires_grad()) throw std::invalid_argument("ZeRO-3: parameter " + names[k] + " is frozen; every trained parameter must require grad");
        // Held here: a parameter keeps only a weak reference to its accumulator (grad_sync.cpp).
        auto acc = torch::autograd::impl::grad_accumulator(params[k]);
        keys.push_back(acc->add_post_hook(std::make_unique<ReadyHook>([this, k] { on_ready(k); })));
        accumulators.push_back(std::move(acc));
      }
    }
  }

  ~ShardedModel() override {
    for (size_t k = 0; k < accumulators.size(); ++k) accumulators[k]->del_post_hook(keys[k]);
    // An all-gather still running writes into its buffer: wait for it before dropping it
    // (a failed one is ignored here: the run is ending).
    for (auto& u : units)
      if (u.work) {
        try {
          u.work->wait();
        } catch (const std::exception&) {
        }
      }
  }

  at::Tensor layer(size_t index, const BlockFn& block, const at::Tensor& x, bool checkpoint,
                   const std::vector<at::Generator>& preserve) override {
    const size_t u = index + 1;
    if (u >= units.size()) throw std::logic_error("ZeRO-3: no unit for decoder layer " + std::to_string(index));
    gather(u);
    if (u + 1 < units.size()) prefetch(u + 1);
    at::Tensor y = checkpoint ? checkpointed(
                                    [this, u, block](const at::Tensor& in) {
                                      gather(u);  // the recompute in backward: again if freed
                                      return block(in);
                                    },
                                    x, preserve)
                              : block(x);
    release(u);
    return for_backward(y, u);
  }

  std::vector<at::Tensor> model(const std::function<std::vector<at::Tensor>()>& forward) override {
    gather(0);
    if (units.size() > 1) prefetch(1);
    auto out = forward();
    release(0);
    for (auto& t : out) t = for_backward(t, 0);
    return out;
  }

  // Backward reached unit u's output: gather it, and start the gather of the unit it reaches next.
  void before_backward(size_t u) {
    gather(u);
    const size_t next = u == 0 ? units.size() - 1 : u - 1;
    if (next >= 1 && next != u) prefetch(next);
  }

  void gather(size_t i) {
    auto& u = units[i];
    if (u.gathered) return;
    if (!u.work) launch_gather(u);
    auto w = std::move(u.work);
    u.work.reset();
    group->impl().run(w, "ZeRO-3 parameter all-gather");
    for (size_t j = 0; j < u.members.size(); ++j) point_storage(params[u.members[j]], u.flat, u.offset[j]);
    u.gathered = true;
  }

  void prefetch(size_t i) {
    auto& u = units[i];
    if (!u.gathered && !u.work) launch_gather(u);
  }

  void release(size_t i) {
    auto& u = units[i];
    if (!u.gathered) return;
    for (size_t k : u.members) point_storage(params[k], at::Tensor(), 0);
    u.flat.reset();
    u.gathered = false;
  }

  // Every gradient reduce-scatter launched so far, added into the units' gradient shards; units
  // whose backward reached only some of their parameters are reduce-scattered as they are.
  void finish_gradients() {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < units.size(); ++i)
      if (units[i].fired > 0) {
        units[i].fired = 0;
        reduce_scatter(i);
      }
    while (!pending.empty()) drain_one();
  }

  // All-gathers a [u.shard] tensor of unit u's layout (its AdamW state) from every rank into a
  // [world * u.shard] buffer (checkpoints).
  at::Tensor all_gather(const Unit& u, const at::Tensor& shard) {
    auto flat = at::empty({u.shard * group->world_size()}, shard.options());
    auto& pg = group->impl();
    auto in = shard.contiguous();
    pg.run(pg.backend->_allgather_base(flat, in), "ZeRO-3 state all-gather");
    return flat;
  }

  std::shared_ptr<ProcessGroup> group;
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  std::vector<Unit> units;
  std::vector<size_t> unit_of;

 private:
  struct Pending {
    c10::intrusive_ptr<c10d::Work> work;
    at::Tensor in, out;
    size_t unit;
  };

  at::Tensor for_backward(const at::Tensor& y, size_t u);

  void launch_gather(Unit& u) {
    auto& pg = group->impl();
    u.flat = at::empty({u.shard * group->world_size()}, u.w.options());
    try {
      u.work = pg.backend->_allgather_base(u.flat, u.w);
    } catch (const std::exception& e) {
      throw pg.collective_error("ZeRO-3 parameter all-gather", e.what());
    }
    maybe_die_in_allgather();
  }

  void on_ready(size_t k) {
    const size_t i = unit_of[k];
    auto& u = units[i];
    if (++u.fired < u.members.size()) return;
    u.fired = 0;
    at::NoGradGuard no_grad;
    reduce_scatter(i);
    release(i);
  }

  void reduce_scatter(size_t i) {
    auto& u = units[i];
    auto& pg = group->impl();
    const auto& first = params[u.members[0]];
    auto in = at::empty({u.shard * group->world_size()}, first.options().dtype(at::kFloat).requires_grad(false));
    in.narrow(0, u.numel, in.numel() - u.numel).zero_();
    for (size_t j = 0; j < u.members.size(); ++j) {
      auto& p = params[u.members[j]];
      auto dst = in.narrow(0, u.offset[j], p.numel());
      if (p.grad().defined()) dst.copy_(p.grad().reshape({-1}));
      else dst.zero_();
      p.mutable_grad().reset();
    }
    auto out = at::empty({u.shard}, in.options());
    Pending job{nullptr, in, out, i};
    try {
      job.work = pg.backend->_reduce_scatter_base(out, in);
    } catch (const std::exception& e) {
      throw pg.collective_error("ZeRO-3 gradient reduce-scatter", e.what());
    }
    pending.push_back(std::move(job));
    // At most two reductions in flight: each holds a unit's full float32 gradients.
    while (pending.size() > 2) drain_one();
  }

  void drain_one() {
    auto job = std::move(pending.front());
    pending.pop_front();
    group->impl().run(job.work, "ZeRO-3 gradient reduce-scatter");
    auto& u = units[job.unit];
    if (u.grad.defined()) u.grad.add_(job.out);
    else u.grad = job.out;
  }

  bool trained_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> keys;
  std::deque<Pending> pending;
};

// Identity in forward; in backward, runs first for the unit whose output it marks.
struct GatherForBackward : torch::autograd::Function<GatherForBackward> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t model, int64_t unit) {
    ctx->saved_data["model"] = model;
    ctx->saved_data["unit"] = unit;
    return x.view_as(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto* m = reinterpret_cast<ShardedModel*>(ctx->saved_data["model"].toInt());
    m->before_backward(static_cast<size_t>(ctx->saved_data["unit"].toInt()));
    return {grads[0], at::Tensor(), at::Tensor()};
  }
};

at::Tensor ShardedModel::for_backward(const at::Tensor& y, size_t u) {
  if (!trained_ || !y.defined() || !y.requires_grad() || !at::GradMode::is_enabled()) return y;
  return GatherForBackward::apply(y, reinterpret_cast<int64_t>(this), static_cast<int64_t>(u));
}

}  // namespace

class Zero3Impl {
 public:
  Zero3Impl(std::shared_ptr<Trainer> t, std::shared_ptr<ProcessGroup> g) : trainer(std::move(t)), group(std::move(g)) {
    auto& ti = trainer->impl();
    opt = ti.optimizer.get();
    auto& pm = ti.policy->impl();
    if (pm.lora) throw std::invalid_argument("ZeRO-3: LoRA policies are not sharded yet (use ZeRO 0, 1 or 2)");
    if (ti.ppo) throw std::invalid_argument("ZeRO-3: loss ppo is not sharded yet (use ZeRO 0, 1 or 2)");
    if (opt->kind_ != TrainOptimizer::Kind::kFusedAdamW)
      throw std::invalid_argument("ZeRO-3: the sharded optimizer runs the fused AdamW (optimizer=AdamW, precision fp32, bf16-pure or "
                                  "bf16-mixed); this trainer runs " + opt->kind_name());
    if (pm.lm->param_units) throw std::invalid_argument("ZeRO-3: the policy is sharded already");
    policy = std::make_shared<ShardedModel>(pm, group, /*trained=*/true);
    if (policy->params.size() != opt->params_.size()) throw std::logic_error("ZeRO-3: the optimizer's parameters are not the policy's");
    for (size_t k = 0; k < opt->params_.size(); ++k)
      if (opt->names_[k] != policy->names[k]) throw std::logic_error("ZeRO-3: the optimizer's parameter order is not the policy's");
    adopt_state();
    plan.stage = 3;
    const int64_t rank = group->rank();
    const bool mixed = opt->precision_.mode == Precision::kMixed;
    const int64_t elem = policy->params.empty() ? 4 : policy->params[0].element_size();
    plan.state_bytes_per_element = mixed ? 12 : 2 * elem;
    plan.grad_bytes_per_element = 4;
    for (const auto& u : policy->units) {
      plan.total_numel += u.numel;
      const int64_t mine = std::max<int64_t>(0, std::min(u.shard, u.numel - rank * u.shard));
      plan.owned_numel += mine;
      plan.owned_params += mine > 0 ? 1 : 0;
    }
    pm.lm->param_units = policy;
    if (ti.reference) {
      auto& rm = ti.reference->impl();
      reference = std::make_shared<ShardedModel>(rm, group, /*trained=*/false);
      rm.lm->param_units = reference;
    }
    opt->sharded_step_ = [this](double lr, double max_grad_norm) { return step(lr, max_grad_norm); };
  }

  ~Zero3Impl() {
    opt->sharded_step_ = nullptr;
    auto& ti = trainer->impl();
    ti.policy->impl().lm->param_units = nullptr;
    if (ti.reference) ti.reference->impl().lm->param_units = nullptr;
  }

  // A loaded checkpoint's per-parameter AdamW state (every rank read the one-process file) cut
  // into this rank's shards; the per-parameter copies are dropped.
  void adopt_state() {
    at::NoGradGuard no_grad;
    const bool mixed = opt->precision_.mode == Precision::kMixed;
    const int64_t rank = group->rank();
    for (auto& u : policy->units) {
      int64_t step = 0;
      bool any = false;
      for (size_t k : u.members) {
        const auto& st = opt->adam_[k];
        if (!st.defined()) continue;
        any = true;
        step = std::max(step, st.step);
      }
      if (!any) continue;
      // Members no update had touched yet (none, in practice) keep zeros.
      auto cut = [&](auto get, at::ScalarType dtype) {
        auto full = at::zeros({u.shard * group->world_size()}, u.w.options().dtype(dtype));
        for (size_t j = 0; j < u.members.size(); ++j) {
          const auto& st = opt->adam_[u.members[j]];
          auto dst = full.narrow(0, u.offset[j], st.defined() ? get(st).numel() : 0);
          if (st.defined()) dst.copy_(get(st).reshape({-1}));
        }
        return full.narrow(0, rank * u.shard, u.shard).clone();
      };
      const auto moment = mixed ? at::kFloat : u.w.scalar_type();
      u.m = cut([](const AdamParamState& s) { return s.exp_avg; }, moment);
      u.v = cut([](const AdamParamState& s) { return s.exp_avg_sq; }, moment);
      if (mixed) u.master = cut([](const AdamParamState& s) { return s.master; }, at::kFloat);
      u.step = step;
      u.step_t = at::full({}, static_cast<double>(step), u.w.options().dtype(at::kFloat));
    }
    for (auto& st : opt->adam_) st = AdamParamState{};
  }

  void ensure_state(Unit& u) {
    if (u.m.defined()) return;
    const bool mixed = opt->precision_.mode == Precision::kMixed;
    if (mixed) {
      u.master = u.w.to(at::kFloat);
      u.m = at::zeros_like(u.master);
      u.v = at::zeros_like(u.master);
    } else {
      u.m = at::zeros_like(u.w);
      u.v = at::zeros_like(u.w);
    }
    u.step_t = at::zeros({}, u.w.options().dtype(at::kFloat));
  }

  // The optimizer step on the shards: the clip norm over every gradient (the shards' squares
  // summed over the ranks), then AdamW on each shard, elementwise the single process's update.
  double step(double lr, double max_grad_norm) {
    at::NoGradGuard no_grad;
    policy->finish_gradients();
    for (size_t i = 0; i < policy->units.size(); ++i) policy->release(i);
    auto& units = policy->units;
    bool any = false;
    for (auto& u : units) any = any || u.grad.defined();
    if (!any) return 0.0;
    // The reduced float32 gradients in the trainable dtype, as the one process holds its
    // gradients (bf16 under bf16-mixed and bf16-pure): the norm and the update read those.
    for (auto& u : units)
      if (u.grad.defined() && u.w.scalar_type() != at::kFloat) u.grad = u.grad.to(u.w.scalar_type()).to(at::kFloat);
    auto& pg = group->impl();
    at::Tensor sq = at::zeros({1}, units[0].w.options().dtype(at::kDouble));
    for (auto& u : units)
      if (u.grad.defined()) sq.add_(at::linalg_vector_norm(u.grad, 2, std::nullopt, false, at::kDouble).square());
    std::vector<at::Tensor> ts{pg.to_comm(sq)};
    pg.run(pg.backend->allreduce(ts), "ZeRO-3 gradient norm");
    const double norm = std::sqrt(ts[0].cpu().item<double>());
    if (std::isfinite(norm)) {
      const bool mixed = opt->precision_.mode == Precision::kMixed;
      double coef = 1.0;
      if (max_grad_norm > 0) coef = std::min(1.0, max_grad_norm / (norm + 1e-6));
      // One kernel call over per-parameter pieces of the shards, not over whole shards: the
      // fused kernel computes a tensor's last (numel mod vector width) elements on its scalar
      // path, which rounds differently from its vector lanes, so a parameter held whole by this
      // rank is updated bit for bit as in the one process; only the pieces of parameters cut by
      // a shard boundary may differ there in the last bit of an element or two.
      const int64_t rank = group->rank();
      std::vector<at::Tensor> w, g, m, v, s;
      for (auto& u : units) {
        if (!u.grad.defined()) continue;
        ensure_state(u);
        u.step += 1;
        u.step_t.add_(1);
        // bf16-mixed updates the fp32 master with the float32 view of the bf16 gradient;
        // bf16-pure the bf16 weights with the bf16 gradient.
        auto grad = mixed || u.w.scalar_type() == at::kFloat ? u.grad : u.grad.to(u.w.scalar_type());
        if (coef < 1.0) grad.mul_(coef);
        const int64_t begin = rank * u.shard, end = begin + u.shard;
        for (size_t j = 0; j < u.members.size(); ++j) {
          const int64_t lo = std::max(begin, u.offset[j]);
          const int64_t hi = std::min(end, u.offset[j] + policy->params[u.members[j]].numel());
          if (lo >= hi) continue;
          auto piece = [&](const at::Tensor& t) { return t.narrow(0, lo - begin, hi - lo); };
          w.push_back(piece(mixed ? u.master : u.w));
          g.push_back(piece(grad));
          m.push_back(piece(u.m));
          v.push_back(piece(u.v));
          s.push_back(u.step_t);
        }
      }
      if (!w.empty())
        at::_fused_adamw_(w, g, m, v, {}, s, lr, opt->beta1_, opt->beta2_, opt->weight_decay_, opt->eps_, /*amsgrad=*/false, /*maximize=*/false);
      if (mixed)
        for (auto& u : units)
          if (u.grad.defined()) u.w.copy_(u.master);  // round to nearest even, as the unsharded step
    }
    for (auto& u : units) u.grad.reset();
    return norm;
  }

  void gather_state() {
    at::NoGradGuard no_grad;
    const bool main = group->rank() == 0;
    const bool mixed = opt->precision_.mode == Precision::kMixed;
    for (size_t i = 0; i < policy->units.size(); ++i) {
      auto& u = policy->units[i];
      policy->gather(i);
      if (!main) policy->release(i);
      // Every rank updated every unit since the first step (or none has): the same on all.
      if (!u.m.defined()) continue;
      auto m = policy->all_gather(u, u.m), v = policy->all_gather(u, u.v);
      at::Tensor master = mixed ? policy->all_gather(u, u.master) : at::Tensor();
      if (!main) continue;
      for (size_t j = 0; j < u.members.size(); ++j) {
        const size_t k = u.members[j];
        const auto& p = policy->params[k];
        auto piece = [&](const at::Tensor& flat) { return flat.narrow(0, u.offset[j], p.numel()).view(p.sizes()).clone(); };
        auto& st = opt->adam_[k];
        st.step = u.step;
        st.step_t = at::full({}, static_cast<double>(u.step), p.options().dtype(at::kFloat).requires_grad(false));
        st.exp_avg = piece(m);
        st.exp_avg_sq = piece(v);
        if (mixed) st.master = piece(master);
      }
    }
  }

  void release_state() {
    for (size_t i = 0; i < policy->units.size(); ++i) policy->release(i);
    for (auto& st : opt->adam_) st = AdamParamState{};
  }

  int64_t state_numel() const {
    int64_t n = 0;
    for (const auto& u : policy->units)
      if (u.m.defined()) n += u.m.numel();
    return n;
  }

  std::shared_ptr<Trainer> trainer;
  std::shared_ptr<ProcessGroup> group;
  TrainOptimizer* opt = nullptr;
  std::shared_ptr<ShardedModel> policy, reference;
  ZeroPlan plan;
};

Zero3::Zero3(std::shared_ptr<Trainer> trainer, std::shared_ptr<ProcessGroup> group)
    : impl_(std::make_unique<Zero3Impl>(std::move(trainer), std::move(group))) {}
Zero3::~Zero3() = default;
const ZeroPlan& Zero3::plan() const { return impl_->plan; }
void Zero3::gather_state() { impl_->gather_state(); }
void Zero3::release_state() { impl_->release_state(); }
int64_t Zero3::state_numel() const { return impl_->state_numel(); }

#else

class Zero3Impl {};
Zero3::Zero3(std::shared_ptr<Trainer>, std::shared_ptr<ProcessGroup>) { throw std::runtime_error(dist_unavailable_reason()); }
Zero3::~Zero3() = default;
const ZeroPlan& Zero3::plan() const {
  static const ZeroPlan none;
  return none;
}
void Zero3::gather_state() {}
void Zero3::release_state() {}
int64_t Zero3::state_numel() const { return 0; }

#endif

}  // namespace rpo
