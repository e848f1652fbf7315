#include <algorithm>

#include "binding/convert.h"
#include "binding/wraps.h"

namespace rpo_binding {

namespace {

// Trainer.stochasticRoundBf16(values: Float32Array, seed): bf16-sr's rounding of each value
// (tests; synchronous, for small arrays).
Napi::Value StochasticRoundBf16(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "stochasticRoundBf16(values, seed): values must be a Float32Array");
  auto in = info[0].As<Napi::Float32Array>();
  const double seed = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0.0;
  const auto s = static_cast<uint64_t>(checked_int(env, seed, "stochasticRoundBf16: seed", 0, kMaxSafeInteger));
  std::vector<float> values(in.Data(), in.Data() + in.ElementLength());
  auto r = guard(env, [&] { return rpo::stochastic_round_bf16(values, s); });
  auto out = Napi::Float32Array::New(env, r.size());
  std::copy(r.begin(), r.end(), out.Data());
  return out;
}

}  // namespace

void TrainerWrap::Init(Napi::Env env, Napi::Object exports, AddonData& data) {
  auto cls = DefineClass(env, "Trainer",
                         {
                             InstanceMethod<&TrainerWrap::MicroStep>("microStep"),
                             InstanceMethod<&TrainerWrap::EvalStep>("evalStep"),
                             InstanceMethod<&TrainerWrap::OptimizerStep>("optimizerStep"),
                             InstanceMethod<&TrainerWrap::GradSnapshot>("gradSnapshot"),
                             InstanceMethod<&TrainerWrap::SaveState>("saveState"),
                             InstanceMethod<&TrainerWrap::LoadState>("loadState"),
                             InstanceMethod<&TrainerWrap::LoadValueHead>("loadValueHead"),
                             InstanceMethod<&TrainerWrap::PpoPrepare>("ppoPrepare"),
                             InstanceMethod<&TrainerWrap::Dispose>("dispose"),
                             StaticMethod("stochasticRoundBf16", &StochasticRoundBf16),
                         });
  data.trainer_ctor = Napi::Persistent(cls);
  exports.Set("Trainer", cls);
}

// new Trainer(policy, reference | null, options)
TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  auto env = info.Env();
  auto* policy = ModelWrap::unwrap(env, info[0], "Trainer: policy");
  ModelWrap* reference = nullptr;
  if (!info[1].IsNull() && !info[1].IsUndefined()) reference = ModelWrap::unwrap(env, info[1], "Trainer: reference");
  if (reference == policy) throw Napi::Error::New(env, "Trainer: the reference must be a different Model from the policy");
  const rpo::TrainerOptions opts = trainer_options_from_js(info[2]);
  auto pm = policy->model(env);
  auto rm = reference ? reference->model(env) : nullptr;
  trainer_ = guard(env, [&] { return std::make_shared<rpo::Trainer>(pm, rm, opts); });
  policy_busy_ = policy->busy();
  reference_busy_ = reference ? reference->busy() : nullptr;
}

std::shared_ptr<rpo::Trainer> TrainerWrap::trainer(Napi::Env env) const {
  if (!trainer_) throw Napi::Error::New(env, "Trainer was disposed");
  return trainer_;
}

// A trainer call uses the policy and the reference too: hold all three.
Lease TrainerWrap::lease(Napi::Env env) const {
  return Lease(env, {{busy_, "Trainer"}, {policy_busy_, "Trainer's policy Model"}, {reference_busy_, "Trainer's reference Model"}});
}

namespace {

Napi::Object step_result_to_js(Napi::Env env, const rpo::StepResult& r) {
  auto o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("finite", r.finite);
  o.Set("metrics", metrics_to_js(env, r.metrics));
  o.Set("tokens", static_cast<double>(r.tokens));
  o.Set("nPairs", static_cast<double>(r.n_pairs));
  return o;
}

}  // namespace

// microStep(batch, options) and evalStep(batch, options): the same arguments; evalStep takes
// no gradient and ignores `scale`.
Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info, bool backward) {
  auto env = info.Env();
  auto t = trainer(env);
  auto batch = row_batch_from_js(info[0]);
  const std::string w = backward ? "microStep options" : "evalStep options";
  auto o = get_object(info[1], w);
  const int64_t n_pairs = get_int(o, "nPairs", w, 1, kMaxInt32);
  const double scale = get_number_or(o, "scale", 1.0, w);
  std::optional<rpo::PairLogps> reference;
  auto ref = o.Get("reference");
  if (!ref.IsUndefined() && !ref.IsNull()) reference = pair_logps_from_js(ref, w + ".reference");
  const char* name = backward ? "rpo.Trainer.microStep" : "rpo.Trainer.evalStep";
  return Task::run(env, name, lease(env), [t, batch, n_pairs, scale, reference, backward]() -> Task::Finish {
    auto r = backward ? t->micro_step(batch, n_pairs, scale, reference) : t->eval_step(batch, n_pairs, reference);
    return [r](Napi::Env env) -> Napi::Value { return step_result_to_js(env, r); };
  });
}

Napi::Value TrainerWrap::MicroStep(const Napi::CallbackInfo& info) { return Step(info, true); }
Napi::Value TrainerWrap::EvalStep(const Napi::CallbackInfo& info) { return Step(info, false); }

Napi::Value TrainerWrap::OptimizerStep(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto t = trainer(env);
  const std::string w = "optimizerStep options";
  auto o = get_object(info[0], w);
  const double lr = get_number(o, "lr", w);
  const double max_norm = get_number_or(o, "maxGradNorm", 0.0, w);
  return Task::run(env, "rpo.Trainer.optimizerStep", lease(env), [t, lr, max_norm]() -> Task::Finish {
    auto r = t->optimizer_step(lr, max_norm);
    return [r](Napi::Env env) -> Napi::Value {
      auto o = Napi::Object::New(env);
      o.Set("gradNorm", r.grad_norm);
      return o;
    };
  });
}

Napi::Value TrainerWrap::GradSnapshot(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto t = trainer(env);
  auto names = get_string_array(info[0], "gradSnapshot: names");
  return Task::run(env, "rpo.Trainer.gradSnapshot", lease(env), [t, names]() -> Task::Finish {
    auto g = std::make_shared<std::vector<double>>(t->grad_snapshot(names));
    return [g](Napi::Env env) -> Napi::Value { return to_float64_array(env, *g); };
  });
}

Napi::Value TrainerWrap::SaveState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto t = trainer(env);
  if (!info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "saveState(file, maxShardBytes): file must be a string, maxShardBytes a number");
  auto file = info[0].As<Napi::String>().Utf8Value();
  const auto max = static_cast<uint64_t>(checked_int(env, info[1].As<Napi::Number>().DoubleValue(), "saveState: maxShardBytes", 1, kMaxSafeInteger));
  return Task::run(env, "rpo.Trainer.saveState", lease(env), [t, file, max]() -> Task::Finish {
    t->save_state(file, max);
    return nullptr;
  });
}

Napi::Value TrainerWrap::LoadState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto t = trainer(env);
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "loadState(file): file must be a string");
  auto file = info[0].As<Napi::String>().Utf8Value();
  return Task::run(env, "rpo.Trainer.loadState", lease(env), [t, file]() -> Task::Finish {
    auto warnings = t->load_state(file);
    return [warnings](Napi::Env env) -> Napi::Value {
      auto a = Napi::Array::New(env, warnings.size());
      for (size_t i = 0; i < warnings.size(); ++i) a.Set(static_cast<uint32_t>(i), warnings[i]);
      return a;
    };
  });
}

// ppoPrepare(batches): loss=ppo's gradient-free pass of an optimizer step's micro-batches.
Napi::Value TrainerWrap::PpoPrepare(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto t = trainer(env);
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "ppoPrepare(batches): batches must be an array of batches");
  auto arr = info[0].As<Napi::Array>();
  std::vector<rpo::RowBatch> batches;
  for (uint32_t i = 0; i < arr.Length(); ++i) batches.push_back(row_batch_from_js(arr.Get(i)));
  return Task::run(env, "rpo.Trainer.ppoPrepare", lease(env), [t, batches]() -> Task::Finish {
    t->ppo_prepare(batches);
    return nullptr;
  });
}

Napi::Value TrainerWrap::LoadValueHead(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto t = trainer(env);
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "loadValueHead(dir): dir must be a string");
  auto dir = info[0].As<Napi::String>().Utf8Value();
  return Task::run(env, "rpo.Trainer.loadValueHead", lease(env), [t, dir]() -> Task::Finish {
    t->load_value_head(dir);
    return nullptr;
  });
}

Napi::Value TrainerWrap::Dispose(const Napi::CallbackInfo& info) {
  if (busy_->busy) throw Napi::Error::New(info.Env(), "Trainer is busy: dispose it after its calls finish");
  trainer_.reset();
  return info.Env().Undefined();
}

}  // namespace rpo_binding
