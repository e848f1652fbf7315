// Module entry: registers the classes and the free functions.
#include <napi.h>

#include "binding/convert.h"
#include "binding/dist_wrap.h"
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

Napi::Value EvaluatePpo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto cfg = loss_config_from_js(info[0]);
  auto tokens = ppo_tokens_from_js(info[1]);
  auto r = guard(env, [&] { return rpo::evaluate_ppo(cfg, tokens); });
  auto o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("metrics", metrics_to_js(env, r.metrics));
  o.Set("gradLogps", to_float64_array(env, r.grad_logps));
  o.Set("gradValues", to_float64_array(env, r.grad_values));
  o.Set("advantages", to_float64_array(env, r.advantages));
  o.Set("discountedFutureRewards", to_float64_array(env, r.discounted_future_rewards));
  return o;
}

// The sampler's logits processors on given logits (tests compare them with transformers').
Napi::Value WarpLogits(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "warpLogits: logits must be a Float32Array");
  auto logits = info[0].As<Napi::Float32Array>();
  auto context = prompts_from_js(info[1]);
  auto options = generate_options_from_js(info[2]);
  std::vector<float> in(logits.Data(), logits.Data() + logits.ElementLength());
  auto r = guard(env, [&] { return rpo::warp_logits(in, static_cast<int64_t>(context.size()), context, options); });
  auto out = Napi::Float32Array::New(env, r.size());
  std::copy(r.begin(), r.end(), out.Data());
  return out;
}

// model/sharded_io.h's ranged reader: float32 elements of tensor ranges, concatenated.
Napi::Value ReadSafetensorsRanges(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto specs = tensor_specs_from_js(info[0]);
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "readSafetensorsRanges(tensors, ranges): ranges must be an array");
  auto arr = info[1].As<Napi::Array>();
  std::vector<rpo::TensorRange> ranges;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string w = "readSafetensorsRanges: ranges[" + std::to_string(i) + "]";
    auto o = get_object(arr.Get(i), w);
    ranges.push_back({get_string(o, "name", w), get_int(o, "start", w, 0), get_int(o, "end", w, 0)});
  }
  auto out = std::make_shared<std::vector<float>>();
  return Task::run(env, "rpo.readSafetensorsRanges", Lease(env, {}), [specs, ranges, out]() -> Task::Finish {
    *out = rpo::read_safetensors_ranges(specs, ranges);
    return [out](Napi::Env e) -> Napi::Value {
      auto a = Napi::Float32Array::New(e, out->size());
      std::copy(out->begin(), out->end(), a.Data());
      return a;
    };
  });
}

// model/sharded_io.h's streamed writer over tensors given as bytes.
Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsString() || !info[1].IsArray())
    throw Napi::TypeError::New(env, "writeSafetensors(dir, tensors, options): dir must be a string, tensors an array");
  const auto dir = info[0].As<Napi::String>().Utf8Value();
  auto arr = info[1].As<Napi::Array>();
  std::vector<rpo::TensorBytes> tensors;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string w = "writeSafetensors: tensors[" + std::to_string(i) + "]";
    auto o = get_object(arr.Get(i), w);
    rpo::TensorBytes t;
    t.name = get_string(o, "name", w);
    t.dtype = get_string(o, "dtype", w);
    auto shape = o.Get("shape");
    if (!shape.IsArray()) throw Napi::TypeError::New(env, w + ": shape must be an array of integers");
    auto sa = shape.As<Napi::Array>();
    for (uint32_t j = 0; j < sa.Length(); ++j) {
      auto e = sa.Get(j);
      if (!e.IsNumber()) throw Napi::TypeError::New(env, w + ": shape must be an array of non-negative integers");
      t.shape.push_back(checked_int(env, e.As<Napi::Number>().DoubleValue(), w + ": shape[" + std::to_string(j) + "]", 0, kMaxSafeInteger));
    }
    auto data = o.Get("data");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, w + ": data must be a Uint8Array");
    auto bytes = data.As<Napi::Uint8Array>();
    t.data.assign(bytes.Data(), bytes.Data() + bytes.ElementLength());  // copied: the work runs off the JS thread
    tensors.push_back(std::move(t));
  }
  auto opts = get_object(info[2], "writeSafetensors: options");
  const auto max = static_cast<uint64_t>(get_int(opts, "maxShardBytes", "writeSafetensors: options", 1));
  const auto stem = get_string_or(opts, "stem", "model", "writeSafetensors: options");
  return Task::run(env, "rpo.writeSafetensors", Lease(env, {}), [dir, tensors, max, stem]() -> Task::Finish {
    rpo::write_safetensors_tensors(dir, tensors, max, stem);
    return nullptr;
  });
}

Napi::Value LossTable(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto table = rpo::loss_declarations();
  auto arr = Napi::Array::New(env, table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    const auto& d = table[i];
    auto o = Napi::Object::New(env);
    o.Set("name", d.name);
    o.Set("formula", d.formula);
    o.Set("layout", d.layout);
    o.Set("needsReference", d.needs_reference);
    o.Set("policyMean", d.policy_mean);
    o.Set("referenceMean", d.reference_mean);
    o.Set("rationale", d.rationale);
    o.Set("valueHead", d.value_head);
    auto params = Napi::Array::New(env, d.params.size());
    for (size_t j = 0; j < d.params.size(); ++j) params.Set(static_cast<uint32_t>(j), d.params[j]);
    o.Set("params", params);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

// The range is checked on the double: Int32Value would wrap 2**31 to a negative count and
// pass 1e9 on to libgomp, which kills the process starting that many threads.
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "setNumThreads(n): n must be a number");
  const auto n = checked_int(env, info[0].As<Napi::Number>().DoubleValue(), "setNumThreads(n): n", 1, rpo::max_num_threads());
  guard(env, [&] { rpo::set_num_threads(static_cast<int>(n)); });
  return env.Undefined();
}

Napi::Value MaxNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rpo::max_num_threads()); }
Napi::Value DefaultNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), guard(info.Env(), [] { return rpo::default_num_threads(); }));
}
Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rpo::get_num_threads()); }
Napi::Value LibtorchVersion(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), rpo::libtorch_version()); }
Napi::Value CpuGemmBackend(const Napi::CallbackInfo& info) {
  // Decided by a probe at first use, which does tensor work: on the engine thread.
  return Napi::String::New(info.Env(), guard(info.Env(), [] {
    std::string backend;
    rpo::run_on_engine_thread([&] { backend = rpo::cpu_gemm_backend(); });
    return backend;
  }));
}
Napi::Value SetCpuGemmBackend(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "setCpuGemmBackend(name): name must be a string");
  const auto name = info[0].As<Napi::String>().Utf8Value();
  return Napi::String::New(env, guard(env, [&] {
    std::string backend;
    rpo::run_on_engine_thread([&] { backend = rpo::set_cpu_gemm_backend(name); });
    return backend;
  }));
}
Napi::Value CpuFewRowKernel(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), guard(info.Env(), [] { return rpo::cpu_few_row_kernel(); }));
}
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), guard(info.Env(), [] { return rpo::cuda_available(); }));
}
Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), guard(info.Env(), [] { return rpo::cuda_device_count(); }));
}

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto r = guard(env, [] { return rpo::cuda_info(); });
  auto o = Napi::Object::New(env);
  o.Set("built", r.built);
  o.Set("kernels", r.kernels);
  o.Set("graphs", r.graphs);
  o.Set("available", r.available);
  o.Set("runtimeVersion", r.runtime_version);
  o.Set("driverVersion", r.driver_version);
  o.Set("tf32", r.tf32);
  auto devices = Napi::Array::New(env, r.devices.size());
  for (size_t i = 0; i < r.devices.size(); ++i) {
    const auto& d = r.devices[i];
    auto x = Napi::Object::New(env);
    x.Set("index", d.index);
    x.Set("name", d.name);
    x.Set("capability", std::to_string(d.major) + "." + std::to_string(d.minor));
    x.Set("totalMemory", static_cast<double>(d.total_memory));
    x.Set("multiprocessors", d.multiprocessors);
    devices.Set(static_cast<uint32_t>(i), x);
  }
  o.Set("devices", devices);
  return o;
}

int device_arg(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() == 0 || info[0].IsUndefined()) return 0;
  if (!info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(fn) + "(device): device must be a number");
  return static_cast<int>(checked_int(info.Env(), info[0].As<Napi::Number>().DoubleValue(), std::string(fn) + "(device): device", 0, 1023));
}

Napi::Value CudaMemoryStats(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const int device = device_arg(info, "cudaMemoryStats");
  auto s = guard(env, [&] { return rpo::cuda_memory_stats(device); });
  auto o = Napi::Object::New(env);
  o.Set("allocated", static_cast<double>(s.allocated));
  o.Set("reserved", static_cast<double>(s.reserved));
  o.Set("peakAllocated", static_cast<double>(s.peak_allocated));
  o.Set("peakReserved", static_cast<double>(s.peak_reserved));
  o.Set("free", static_cast<double>(s.free));
  o.Set("total", static_cast<double>(s.total));
  return o;
}

Napi::Value ResetCudaPeakMemory(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const int device = device_arg(info, "resetCudaPeakMemory");
  guard(env, [&] { rpo::cuda_reset_peak_memory(device); });
  return env.Undefined();
}

Napi::Value SetAllowTF32(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "setAllowTF32(allow): allow must be a boolean");
  guard(env, [&] { rpo::set_allow_tf32(info[0].As<Napi::Boolean>().Value()); });
  return env.Undefined();
}

Napi::Value AllowTF32(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), guard(info.Env(), [] { return rpo::allow_tf32(); }));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  ModelWrap::Init(env, exports, *data);
  TrainerWrap::Init(env, exports, *data);
  init_dist(env, exports);
  exports.Set("evaluateLoss", Napi::Function::New<EvaluateLoss>(env, "evaluateLoss"));
  exports.Set("evaluatePpo", Napi::Function::New<EvaluatePpo>(env, "evaluatePpo"));
  exports.Set("warpLogits", Napi::Function::New<WarpLogits>(env, "warpLogits"));
  exports.Set("readSafetensorsRanges", Napi::Function::New<ReadSafetensorsRanges>(env, "readSafetensorsRanges"));
  exports.Set("writeSafetensors", Napi::Function::New<WriteSafetensors>(env, "writeSafetensors"));
  exports.Set("lossTable", Napi::Function::New<LossTable>(env, "lossTable"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env, "setNumThreads"));
  exports.Set("maxNumThreads", Napi::Function::New<MaxNumThreads>(env, "maxNumThreads"));
  exports.Set("defaultNumThreads", Napi::Function::New<DefaultNumThreads>(env, "defaultNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New<GetNumThreads>(env, "getNumThreads"));
  exports.Set("cpuGemmBackend", Napi::Function::New<CpuGemmBackend>(env, "cpuGemmBackend"));
  exports.Set("setCpuGemmBackend", Napi::Function::New<SetCpuGemmBackend>(env, "setCpuGemmBackend"));
  exports.Set("cpuFewRowKernel", Napi::Function::New<CpuFewRowKernel>(env, "cpuFewRowKernel"));
  exports.Set("libtorchVersion", Napi::Function::New<LibtorchVersion>(env, "libtorchVersion"));
  exports.Set("cudaAvailable", Napi::Function::New<CudaAvailable>(env, "cudaAvailable"));
  exports.Set("cudaDeviceCount", Napi::Function::New<CudaDeviceCount>(env, "cudaDeviceCount"));
  exports.Set("cudaInfo", Napi::Function::New<CudaInfo>(env, "cudaInfo"));
  exports.Set("cudaMemoryStats", Napi::Function::New<CudaMemoryStats>(env, "cudaMemoryStats"));
  exports.Set("resetCudaPeakMemory", Napi::Function::New<ResetCudaPeakMemory>(env, "resetCudaPeakMemory"));
  exports.Set("setAllowTF32", Napi::Function::New<SetAllowTF32>(env, "setAllowTF32"));
  exports.Set("allowTF32", Napi::Function::New<AllowTF32>(env, "allowTF32"));
  // TF32 for fp32 matmuls where a GPU is present (RPO_ALLOW_TF32=0: off); nothing on CPU machines.
  // A broken CUDA setup must not stop the addon loading: cudaInfo() and Model.create report it.
  try {
    rpo::init_cuda_defaults();
  } catch (...) {
  }
  return exports;
}

}  // namespace rpo_binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return rpo_binding::Init(env, exports); }

NODE_API_MODULE(rpo, InitAddon)
