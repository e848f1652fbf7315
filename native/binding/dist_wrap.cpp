// ProcessGroup: connect (the rendezvous), allReduce, barrier, store get/set. GradSync: arm before
// the last micro-step of an optimizer step, finish before the optimizer step. Everything that
// waits on other ranks runs as a Task (off the JS thread), so a slow peer never blocks Node.
#include "binding/dist_wrap.h"

#include "binding/convert.h"
#include "binding/task.h"
#include "binding/wraps.h"
#include "parallel/dist.h"
#include "parallel/process_group_impl.h"
#include "parallel/zero3.h"

namespace rpo_binding {

namespace {

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto cls = DefineClass(env, "ProcessGroup",
                           {
                               InstanceMethod<&ProcessGroupWrap::Connect>("connect"),
                               InstanceMethod<&ProcessGroupWrap::AllReduce>("allReduce"),
                               InstanceMethod<&ProcessGroupWrap::Collectives>("collectives"),
                               InstanceMethod<&ProcessGroupWrap::Barrier>("barrier"),
                               InstanceMethod<&ProcessGroupWrap::StoreSet>("storeSet"),
                               InstanceMethod<&ProcessGroupWrap::StoreGet>("storeGet"),
                               InstanceMethod<&ProcessGroupWrap::Dispose>("dispose"),
                           });
    exports.Set("ProcessGroup", cls);
  }
  explicit ProcessGroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupWrap>(info) {}

  std::shared_ptr<rpo::ProcessGroup> group(Napi::Env env) const {
    if (!group_) throw Napi::Error::New(env, "ProcessGroup is not connected (await connect() first) or was disposed");
    return group_;
  }
  std::shared_ptr<BusyFlag> busy() const { return busy_; }

 private:
  // connect({rank, worldSize, masterAddr, masterPort, timeoutMs, backend, deviceIndex})
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    if (group_) throw Napi::Error::New(env, "ProcessGroup is already connected");
    const std::string w = "ProcessGroup.connect options";
    auto o = get_object(info[0], w);
    rpo::DistOptions d;
    d.world_size = static_cast<int>(get_int(o, "worldSize", w, 1, 1 << 20));
    d.rank = static_cast<int>(get_int(o, "rank", w, 0, d.world_size - 1));
    d.master_addr = get_string_or(o, "masterAddr", d.master_addr, w);
    d.master_port = static_cast<int>(get_int_or(o, "masterPort", d.master_port, w, 1, 65535));
    d.timeout_ms = get_int_or(o, "timeoutMs", d.timeout_ms, w, 1);
    d.backend = get_string_or(o, "backend", d.backend, w);
    d.device_index = static_cast<int>(get_int_or(o, "deviceIndex", 0, w, 0, 1 << 16));
    auto self = Napi::Persistent(Value());
    auto holder = std::make_shared<std::shared_ptr<rpo::ProcessGroup>>();
    auto* me = this;
    auto ref = std::make_shared<Napi::ObjectReference>(std::move(self));
    return Task::run(env, "rpo.ProcessGroup.connect", Lease(env, {{busy_, "ProcessGroup"}}), [d, holder, me, ref]() -> Task::Finish {
      *holder = rpo::ProcessGroup::create(d);
      return [holder, me, ref](Napi::Env env) -> Napi::Value {
        me->group_ = *holder;
        return env.Undefined();
      };
    });
  }

  // allReduce(values: Float64Array, op: 'sum' | 'max' | 'min'): Promise<Float64Array>
  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto g = group(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, "allReduce(values, op): values must be a Float64Array");
    auto in = info[0].As<Napi::Float64Array>();
    std::vector<double> values(in.Data(), in.Data() + in.ElementLength());
    const std::string op = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
    return Task::run(env, "rpo.ProcessGroup.allReduce", Lease(env, {{busy_, "ProcessGroup"}}), [g, values, op]() -> Task::Finish {
      auto r = std::make_shared<std::vector<double>>(g->all_reduce(values, op));
      return [r](Napi::Env env) -> Napi::Value { return to_float64_array(env, *r); };
    });
  }

  // collectives(values: Float64Array, dtype: 'float32' | 'bfloat16'): Promise<{device, allReduce,
  // reduceScatter, allGather, broadcast}>: a check of the backend's tensor collectives on the
  // device it communicates on (NCCL: this rank's GPU). Rank r contributes x·(r + 1), x = values
  // in `dtype`: all-reduce (sum) of it; reduce-scatter (sum) of [x·(r + 1)·1, ..., x·(r + 1)·W]
  // (W = world size), this rank's block; all-gather of it (W blocks); broadcast of it from rank 0.
  // Each result comes back as float64, for the test to compare with its own arithmetic.
  Napi::Value Collectives(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto g = group(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, "collectives(values, dtype): values must be a Float64Array");
    auto in = info[0].As<Napi::Float64Array>();
    std::vector<double> values(in.Data(), in.Data() + in.ElementLength());
    const std::string dtype = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "float32";
    if (dtype != "float32" && dtype != "bfloat16") throw Napi::TypeError::New(env, "collectives(values, dtype): dtype must be float32 or bfloat16");
    return Task::run(env, "rpo.ProcessGroup.collectives", Lease(env, {{busy_, "ProcessGroup"}}), [g, values, dtype]() -> Task::Finish {
#ifdef RPO_WITH_GLOO
      auto& impl = g->impl();
      const int64_t W = g->world_size();
      const int64_t n = static_cast<int64_t>(values.size());
      const auto st = dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
      const auto x = impl.to_comm(at::tensor(values, at::kDouble).to(st) * static_cast<double>(g->rank() + 1));
      std::vector<at::Tensor> reduced{x.clone()};
      impl.run(impl.backend->allreduce(reduced, c10d::AllreduceOptions()), "allReduce");
      std::vector<at::Tensor> blocks;
      for (int64_t b = 0; b < W; ++b) blocks.push_back(x * static_cast<double>(b + 1));
      auto scatter_in = at::cat(blocks).contiguous();
      auto scattered = at::empty({n}, x.options());
      impl.run(impl.backend->_reduce_scatter_base(scattered, scatter_in, c10d::ReduceScatterOptions()), "reduceScatter");
      auto gathered = at::empty({W * n}, x.options());
      auto x_in = x.clone();
      impl.run(impl.backend->_allgather_base(gathered, x_in, c10d::AllgatherOptions()), "allGather");
      std::vector<at::Tensor> cast{x.clone()};
      c10d::BroadcastOptions bo;
      bo.rootRank = 0;
      impl.run(impl.backend->broadcast(cast, bo), "broadcast");
      auto host = [](const at::Tensor& t) {
        auto c = t.to(at::kCPU, at::kDouble).contiguous();
        return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
      };
      auto device = std::make_shared<std::string>(x.device().str());
      auto out = std::make_shared<std::vector<std::vector<double>>>(
          std::vector<std::vector<double>>{host(reduced[0]), host(scattered), host(gathered), host(cast[0])});
      return [device, out](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        o.Set("device", *device);
        o.Set("allReduce", to_float64_array(env, (*out)[0]));
        o.Set("reduceScatter", to_float64_array(env, (*out)[1]));
        o.Set("allGather", to_float64_array(env, (*out)[2]));
        o.Set("broadcast", to_float64_array(env, (*out)[3]));
        return o;
      };
#else
      (void)g;
      (void)values;
      (void)dtype;
      throw std::runtime_error(rpo::dist_unavailable_reason());
#endif
    });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto g = group(env);
    return Task::run(env, "rpo.ProcessGroup.barrier", Lease(env, {{busy_, "ProcessGroup"}}), [g]() -> Task::Finish {
      g->barrier();
      return nullptr;
    });
  }

  Napi::Value StoreSet(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto g = group(env);
    if (!info[0].IsString() || !info[1].IsString()) throw Napi::TypeError::New(env, "storeSet(key, value): two strings");
    auto key = info[0].As<Napi::String>().Utf8Value();
    auto value = info[1].As<Napi::String>().Utf8Value();
    return Task::run(env, "rpo.ProcessGroup.storeSet", Lease(env, {{busy_, "ProcessGroup"}}), [g, key, value]() -> Task::Finish {
      g->store_set(key, value);
      return nullptr;
    });
  }

  Napi::Value StoreGet(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto g = group(env);
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "storeGet(key): key must be a string");
    auto key = info[0].As<Napi::String>().Utf8Value();
    return Task::run(env, "rpo.ProcessGroup.storeGet", Lease(env, {{busy_, "ProcessGroup"}}), [g, key]() -> Task::Finish {
      auto v = std::make_shared<std::string>(g->store_get(key));
      return [v](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *v); };
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_->busy) throw Napi::Error::New(info.Env(), "ProcessGroup is busy: dispose it after its calls finish");
    group_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<rpo::ProcessGroup> group_;
  std::shared_ptr<BusyFlag> busy_ = std::make_shared<BusyFlag>();
};

class GradSyncWrap : public Napi::ObjectWrap<GradSyncWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto cls = DefineClass(env, "GradSync",
                           {
                               InstanceMethod<&GradSyncWrap::Arm>("arm"),
                               InstanceMethod<&GradSyncWrap::Finish>("finish"),
                               InstanceMethod<&GradSyncWrap::ReduceToOwners>("reduceToOwners"),
                               InstanceMethod<&GradSyncWrap::AttachValueHead>("attachValueHead"),
                               InstanceMethod<&GradSyncWrap::Dispose>("dispose"),
                           });
    exports.Set("GradSync", cls);
  }

  // new GradSync(policy: Model, group: ProcessGroup, { bucketBytes })
  explicit GradSyncWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GradSyncWrap>(info) {
    auto env = info.Env();
    auto* policy = ModelWrap::unwrap(env, info[0], "GradSync: policy");
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "GradSync: group must be a ProcessGroup");
    auto* pg = Napi::ObjectWrap<ProcessGroupWrap>::Unwrap(info[1].As<Napi::Object>());
    const std::string w = "GradSync options";
    const int64_t bucket = info[2].IsObject() ? get_int_or(info[2].As<Napi::Object>(), "bucketBytes", 25 << 20, w, 1) : (25 << 20);
    auto pm = policy->model(env);
    auto g = pg->group(env);
    sync_ = guard(env, [&] { return std::make_shared<rpo::GradSync>(pm, g, bucket); });
    policy_busy_ = policy->busy();
    group_busy_ = pg->busy();
  }

 private:
  std::shared_ptr<rpo::GradSync> sync(Napi::Env env) const {
    if (!sync_) throw Napi::Error::New(env, "GradSync was disposed");
    return sync_;
  }

  Napi::Value Arm(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto s = sync(env);
    if (policy_busy_->busy) throw Napi::Error::New(env, "GradSync.arm: the policy is busy (await its micro-step first)");
    guard(env, [&] { s->arm(); });
    return env.Undefined();
  }

  Napi::Value Finish(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto s = sync(env);
    std::vector<std::pair<std::shared_ptr<BusyFlag>, std::string>> flags{{busy_, "GradSync"}, {policy_busy_, "GradSync's policy Model"}, {group_busy_, "GradSync's ProcessGroup"}};
    if (trainer_busy_) flags.emplace_back(trainer_busy_, "GradSync's ppo Trainer");
    Lease lease(env, flags);
    return Task::run(env, "rpo.GradSync.finish", std::move(lease), [s]() -> Task::Finish {
      auto r = s->finish();
      return [r](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        o.Set("waitSeconds", r.wait_seconds);
        o.Set("buckets", static_cast<double>(r.buckets));
        o.Set("bytes", static_cast<double>(r.bytes));
        o.Set("launchedEarly", static_cast<double>(r.launched_early));
        o.Set("resent", static_cast<double>(r.resent));
        o.Set("settledEarly", static_cast<double>(r.settled_early));
        return o;
      };
    });
  }

  // reduceToOwners(zero: ZeroShard): ZeRO-2 (dist.h); defined after ZeroShardWrap.
  Napi::Value ReduceToOwners(const Napi::CallbackInfo& info);

  // attachValueHead(trainer: Trainer): loss=ppo (dist.h).
  Napi::Value AttachValueHead(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto s = sync(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "GradSync.attachValueHead(trainer)");
    auto* tw = Napi::ObjectWrap<TrainerWrap>::Unwrap(info[0].As<Napi::Object>());
    auto t = tw->shared_trainer(env);
    if (busy_->busy || tw->busy()->busy) throw Napi::Error::New(env, "GradSync.attachValueHead: the GradSync or the Trainer is busy");
    guard(env, [&] { s->attach_value_head(t); });
    trainer_busy_ = tw->busy();
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_->busy) throw Napi::Error::New(info.Env(), "GradSync is busy: dispose it after its calls finish");
    // The hooks come off the policy's gradient accumulators on the engine thread (autograd's).
    auto s = std::move(sync_);
    guard(info.Env(), [&] { rpo::run_on_engine_thread([&] { s.reset(); }); });
    return info.Env().Undefined();
  }

  std::shared_ptr<rpo::GradSync> sync_;
  std::shared_ptr<BusyFlag> busy_ = std::make_shared<BusyFlag>();
  std::shared_ptr<BusyFlag> policy_busy_, group_busy_, trainer_busy_;
};

// ZeRO-1/2's and ZeRO-3's shard plan as JS reads it: one layout (rpo::ZeroPlan) for every stage.
Napi::Object zero_plan_object(Napi::Env env, const rpo::ZeroPlan& p) {
  auto o = Napi::Object::New(env);
  o.Set("ownedParams", static_cast<double>(p.owned_params));
  o.Set("ownedNumel", static_cast<double>(p.owned_numel));
  o.Set("totalNumel", static_cast<double>(p.total_numel));
  o.Set("stateBytesPerElement", static_cast<double>(p.state_bytes_per_element));
  o.Set("gradBytesPerElement", static_cast<double>(p.grad_bytes_per_element));
  o.Set("stage", p.stage);
  return o;
}

// A ZeRO object's collective call (it waits on the other ranks): a Task off the JS thread, with the
// ZeRO object, its Trainer, policy and ProcessGroup leased for its duration.
template <typename Z>
Napi::Value run_zero_call(Napi::Env env, const char* name, const std::vector<std::pair<std::shared_ptr<BusyFlag>, std::string>>& flags,
                          std::shared_ptr<Z> z, void (Z::*fn)()) {
  return Task::run(env, name, Lease(env, flags), [z, fn]() -> Task::Finish {
    ((*z).*fn)();
    return nullptr;
  });
}

class ZeroShardWrap : public Napi::ObjectWrap<ZeroShardWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto cls = DefineClass(env, "ZeroShard",
                           {
                               InstanceMethod<&ZeroShardWrap::Plan>("plan"),
                               InstanceMethod<&ZeroShardWrap::BroadcastParams>("broadcastParams"),
                               InstanceMethod<&ZeroShardWrap::GatherState>("gatherState"),
                               InstanceMethod<&ZeroShardWrap::ReleaseState>("releaseState"),
                               InstanceMethod<&ZeroShardWrap::StateNumel>("stateNumel"),
                               InstanceMethod<&ZeroShardWrap::Dispose>("dispose"),
                           });
    exports.Set("ZeroShard", cls);
  }

  // new ZeroShard(trainer: Trainer, group: ProcessGroup, { stage?: 1 | 2 })
  explicit ZeroShardWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ZeroShardWrap>(info) {
    auto env = info.Env();
    if (!info[0].IsObject() || !info[1].IsObject()) throw Napi::TypeError::New(env, "ZeroShard(trainer, group)");
    const int stage = static_cast<int>(info[2].IsObject() ? get_int_or(info[2].As<Napi::Object>(), "stage", 1, "ZeroShard options", 1) : 1);
    auto* tw = Napi::ObjectWrap<TrainerWrap>::Unwrap(info[0].As<Napi::Object>());
    auto* pg = Napi::ObjectWrap<ProcessGroupWrap>::Unwrap(info[1].As<Napi::Object>());
    auto t = tw->shared_trainer(env);
    auto g = pg->group(env);
    // On the engine thread: it drops optimizer state (tensors) of other ranks' shares.
    guard(env, [&] { rpo::run_on_engine_thread([&] { zero_ = std::make_shared<rpo::ZeroShard>(t, g, stage); }); });
    flags_ = {{busy_, "ZeroShard"}, {tw->busy(), "ZeroShard's Trainer"}, {tw->policy_busy(), "ZeroShard's policy Model"}, {pg->busy(), "ZeroShard's ProcessGroup"}};
  }

  static ZeroShardWrap* unwrap(Napi::Env env, const Napi::Value& v) {
    if (!v.IsObject()) throw Napi::TypeError::New(env, "expected a ZeroShard");
    return Napi::ObjectWrap<ZeroShardWrap>::Unwrap(v.As<Napi::Object>());
  }
  std::shared_ptr<rpo::ZeroShard> shard(Napi::Env env) const { return zero(env); }

 private:
  std::shared_ptr<rpo::ZeroShard> zero(Napi::Env env) const {
    if (!zero_) throw Napi::Error::New(env, "ZeroShard was disposed");
    return zero_;
  }

  Napi::Value Plan(const Napi::CallbackInfo& info) { return zero_plan_object(info.Env(), zero(info.Env())->plan()); }

  Napi::Value Run(const Napi::CallbackInfo& info, const char* name, void (rpo::ZeroShard::*fn)()) {
    return run_zero_call(info.Env(), name, flags_, zero(info.Env()), fn);
  }
  Napi::Value BroadcastParams(const Napi::CallbackInfo& info) { return Run(info, "rpo.ZeroShard.broadcastParams", &rpo::ZeroShard::broadcast_params); }
  Napi::Value GatherState(const Napi::CallbackInfo& info) { return Run(info, "rpo.ZeroShard.gatherState", &rpo::ZeroShard::gather_state); }
  Napi::Value ReleaseState(const Napi::CallbackInfo& info) { return Run(info, "rpo.ZeroShard.releaseState", &rpo::ZeroShard::release_state); }

  Napi::Value StateNumel(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(zero(info.Env())->state_numel()));
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_->busy) throw Napi::Error::New(info.Env(), "ZeroShard is busy: dispose it after its calls finish");
    auto z = std::move(zero_);
    guard(info.Env(), [&] { rpo::run_on_engine_thread([&] { z.reset(); }); });
    return info.Env().Undefined();
  }

  std::shared_ptr<rpo::ZeroShard> zero_;
  std::shared_ptr<BusyFlag> busy_ = std::make_shared<BusyFlag>();
  std::vector<std::pair<std::shared_ptr<BusyFlag>, std::string>> flags_;
};

// new Zero3(trainer: Trainer, group: ProcessGroup): ZeRO-3 (parallel/zero3.h), with ZeroShard's
// methods (broadcastParams does nothing: each rank's shard is all it keeps).
class Zero3Wrap : public Napi::ObjectWrap<Zero3Wrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto cls = DefineClass(env, "Zero3",
                           {
                               InstanceMethod<&Zero3Wrap::Plan>("plan"),
                               InstanceMethod<&Zero3Wrap::BroadcastParams>("broadcastParams"),
                               InstanceMethod<&Zero3Wrap::GatherState>("gatherState"),
                               InstanceMethod<&Zero3Wrap::ReleaseState>("releaseState"),
                               InstanceMethod<&Zero3Wrap::StateNumel>("stateNumel"),
                               InstanceMethod<&Zero3Wrap::Dispose>("dispose"),
                           });
    exports.Set("Zero3", cls);
  }

  explicit Zero3Wrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Zero3Wrap>(info) {
    auto env = info.Env();
    if (!info[0].IsObject() || !info[1].IsObject()) throw Napi::TypeError::New(env, "Zero3(trainer, group)");
    auto* tw = Napi::ObjectWrap<TrainerWrap>::Unwrap(info[0].As<Napi::Object>());
    auto* pg = Napi::ObjectWrap<ProcessGroupWrap>::Unwrap(info[1].As<Napi::Object>());
    auto t = tw->shared_trainer(env);
    auto g = pg->group(env);
    // On the engine thread: it cuts the parameters (and a loaded optimizer state) into shards.
    guard(env, [&] { rpo::run_on_engine_thread([&] { zero_ = std::make_shared<rpo::Zero3>(t, g); }); });
    flags_ = {{busy_, "Zero3"}, {tw->busy(), "Zero3's Trainer"}, {tw->policy_busy(), "Zero3's policy Model"}, {pg->busy(), "Zero3's ProcessGroup"}};
  }

 private:
  std::shared_ptr<rpo::Zero3> zero(Napi::Env env) const {
    if (!zero_) throw Napi::Error::New(env, "Zero3 was disposed");
    return zero_;
  }

  Napi::Value Plan(const Napi::CallbackInfo& info) { return zero_plan_object(info.Env(), zero(info.Env())->plan()); }

  Napi::Value Run(const Napi::CallbackInfo& info, const char* name, void (rpo::Zero3::*fn)()) {
    return run_zero_call(info.Env(), name, flags_, zero(info.Env()), fn);
  }
  Napi::Value BroadcastParams(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    zero(env);
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  Napi::Value GatherState(const Napi::CallbackInfo& info) { return Run(info, "rpo.Zero3.gatherState", &rpo::Zero3::gather_state); }
  Napi::Value ReleaseState(const Napi::CallbackInfo& info) { return Run(info, "rpo.Zero3.releaseState", &rpo::Zero3::release_state); }

  Napi::Value StateNumel(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(zero(info.Env())->state_numel()));
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_->busy) throw Napi::Error::New(info.Env(), "Zero3 is busy: dispose it after its calls finish");
    auto z = std::move(zero_);
    guard(info.Env(), [&] { rpo::run_on_engine_thread([&] { z.reset(); }); });
    return info.Env().Undefined();
  }

  std::shared_ptr<rpo::Zero3> zero_;
  std::shared_ptr<BusyFlag> busy_ = std::make_shared<BusyFlag>();
  std::vector<std::pair<std::shared_ptr<BusyFlag>, std::string>> flags_;
};

Napi::Value DistInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("available", rpo::dist_available());
  o.Set("nccl", rpo::dist_nccl_available());
  o.Set("reason", rpo::dist_unavailable_reason());
  return o;
}

Napi::Value GradSyncWrap::ReduceToOwners(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto s = sync(env);
  auto z = ZeroShardWrap::unwrap(env, info[0])->shard(env);
  if (busy_->busy) throw Napi::Error::New(env, "GradSync.reduceToOwners: GradSync is busy");
  guard(env, [&] { s->reduce_to_owners(*z); });
  return env.Undefined();
}

}  // namespace

void init_dist(Napi::Env env, Napi::Object exports) {
  ProcessGroupWrap::Init(env, exports);
  GradSyncWrap::Init(env, exports);
  ZeroShardWrap::Init(env, exports);
  Zero3Wrap::Init(env, exports);
  exports.Set("distInfo", Napi::Function::New<DistInfo>(env, "distInfo"));
}

}  // namespace rpo_binding
