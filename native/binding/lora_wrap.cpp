// Model's LoRA methods: addLora(options), adapterParams(), loadAdapters(specs), mergeLora().
#include "binding/convert.h"
#include "binding/wraps.h"

namespace rpo_binding {

Napi::Value ModelWrap::AddLora(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  auto options = lora_options_from_js(info[0]);
  return Task::run(env, "rpo.Model.addLora", Lease(env, {{busy_, "Model"}}), [m, options]() -> Task::Finish {
    m->add_lora(options);
    return nullptr;
  });
}

Napi::Value ModelWrap::AdapterParams(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guard(env, [&] { return params_to_js(env, model(env)->adapter_params()); });
}

Napi::Value ModelWrap::LoadAdapters(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  auto specs = tensor_specs_from_js(info[0]);
  return Task::run(env, "rpo.Model.loadAdapters", Lease(env, {{busy_, "Model"}}), [m, specs]() -> Task::Finish {
    m->load_adapters(specs);
    return nullptr;
  });
}

Napi::Value ModelWrap::MergeLora(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  return Task::run(env, "rpo.Model.mergeLora", Lease(env, {{busy_, "Model"}}), [m]() -> Task::Finish {
    m->merge_lora();
    return nullptr;
  });
}

}  // namespace rpo_binding
