// Module entry: registers the classes and the free functions.
#include <napi.h>

#include "binding/convert.h"
#include "binding/task.h"
#include "binding/wraps.h"

namespace rpo_binding {

namespace {

Napi::Value EvaluateLoss(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto cfg = loss_config_from_js(info[0]);
  auto policy = pair_logps_from_js(info[1], "evaluateLoss: policy");
  std::optional<rpo::PairLogps> reference;
  if (!info[2].IsUndefined() && !info[2].IsNull()) reference = pair_logps_from_js(info[2], "evaluateLoss: reference");
  auto r = guard(env, [&] { return rpo::evaluate_loss(cfg, policy, reference); });
  auto o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("metrics", metrics_to_js(env, r.metrics));
  auto grads = Napi::Object::New(env);
  for (auto& [k, v] : r.grads) grads.Set(k, to_float64_array(env, v));
  o.Set("grads", grads);
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "setNumThreads(n): n must be a number");
  guard(env, [&] { rpo::set_num_threads(info[0].As<Napi::Number>().Int32Value()); });
  return env.Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rpo::get_num_threads()); }
Napi::Value LibtorchVersion(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), rpo::libtorch_version()); }
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), guard(info.Env(), [] { return rpo::cuda_available(); }));
}
Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), guard(info.Env(), [] { return rpo::cuda_device_count(); }));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  ModelWrap::Init(env, exports, *data);
  TrainerWrap::Init(env, exports, *data);
  exports.Set("evaluateLoss", Napi::Function::New<EvaluateLoss>(env, "evaluateLoss"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New<GetNumThreads>(env, "getNumThreads"));
  exports.Set("libtorchVersion", Napi::Function::New<LibtorchVersion>(env, "libtorchVersion"));
  exports.Set("cudaAvailable", Napi::Function::New<CudaAvailable>(env, "cudaAvailable"));
  exports.Set("cudaDeviceCount", Napi::Function::New<CudaDeviceCount>(env, "cudaDeviceCount"));
  return exports;
}

}  // namespace rpo_binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return rpo_binding::Init(env, exports); }

NODE_API_MODULE(rpo, InitAddon)
