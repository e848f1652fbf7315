#include "binding/convert.h"
#include "binding/wraps.h"

namespace rpo_binding {

namespace {
// Passed to the constructor by Create only: `new Model()` from JS is refused.
int construct_token = 0;
}  // namespace

void ModelWrap::Init(Napi::Env env, Napi::Object exports, AddonData& data) {
  auto cls = DefineClass(env, "Model",
                         {
                             StaticMethod<&ModelWrap::Create>("create"),
                             InstanceAccessor<&ModelWrap::GetConfig>("config"),
                             InstanceAccessor<&ModelWrap::GetDtype>("dtype"),
                             InstanceAccessor<&ModelWrap::GetDevice>("device"),
                             InstanceAccessor<&ModelWrap::GetNumParameters>("numParameters"),
                             InstanceMethod<&ModelWrap::Params>("params"),
                             InstanceMethod<&ModelWrap::Load>("load"),
                             InstanceMethod<&ModelWrap::Save>("save"),
                             InstanceMethod<&ModelWrap::SaveSafetensors>("saveSafetensors"),
                             InstanceMethod<&ModelWrap::Logits>("logits"),
                             InstanceMethod<&ModelWrap::Logprobs>("logprobs"),
                             InstanceMethod<&ModelWrap::Generate>("generate"),
                             InstanceMethod<&ModelWrap::GenerateProgress>("generateProgress"),
                             InstanceMethod<&ModelWrap::Dispose>("dispose"),
                             InstanceMethod<&ModelWrap::AddLora>("addLora"),
                             InstanceMethod<&ModelWrap::AdapterParams>("adapterParams"),
                             InstanceMethod<&ModelWrap::LoadAdapters>("loadAdapters"),
                             InstanceMethod<&ModelWrap::MergeLora>("mergeLora"),
                         });
  data.model_ctor = Napi::Persistent(cls);
  exports.Set("Model", cls);
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &construct_token)
    throw Napi::TypeError::New(info.Env(), "Model cannot be constructed directly: use Model.create(config, options)");
}

std::shared_ptr<rpo::Model> ModelWrap::model(Napi::Env env) const {
  if (!model_) throw Napi::Error::New(env, "Model was disposed");
  return model_;
}

ModelWrap* ModelWrap::unwrap(Napi::Env env, const Napi::Value& value, const char* what) {
  auto& data = *env.GetInstanceData<AddonData>();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data.model_ctor.Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a Model");
  return Unwrap(value.As<Napi::Object>());
}

Napi::Value ModelWrap::Create(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto config = model_config_from_js(info[0]);
  auto options = init_options_from_js(info[1]);  // init: false allocates without writing the weights
  return Task::run(env, "rpo.Model.create", Lease(env, {}), [config, options]() -> Task::Finish {
    auto model = rpo::Model::create(config, options);
    return [model](Napi::Env env) -> Napi::Value {
      auto& data = *env.GetInstanceData<AddonData>();
      auto obj = data.model_ctor.New({Napi::External<int>::New(env, &construct_token)});
      Unwrap(obj)->model_ = model;
      return obj;
    };
  });
}

Napi::Value ModelWrap::GetConfig(const Napi::CallbackInfo& info) {
  return model_config_to_js(info.Env(), model(info.Env())->config());
}
Napi::Value ModelWrap::GetDtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model(info.Env())->dtype());
}
Napi::Value ModelWrap::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model(info.Env())->device());
}
Napi::Value ModelWrap::GetNumParameters(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(model(info.Env())->num_parameters()));
}
Napi::Value ModelWrap::Params(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guard(env, [&] { return params_to_js(env, model(env)->params()); });
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  auto specs = tensor_specs_from_js(info[0]);
  return Task::run(env, "rpo.Model.load", Lease(env, {{busy_, "Model"}}), [m, specs]() -> Task::Finish {
    m->load(specs);
    return nullptr;
  });
}

Napi::Value ModelWrap::Save(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  if (!info[0].IsString() || !info[1].IsString()) throw Napi::TypeError::New(env, "save(file, header, names): file and header must be strings");
  auto file = info[0].As<Napi::String>().Utf8Value();
  auto header = info[1].As<Napi::String>().Utf8Value();
  auto names = get_string_array(info[2], "save: names");
  return Task::run(env, "rpo.Model.save", Lease(env, {{busy_, "Model"}}), [m, file, header, names]() -> Task::Finish {
    m->save(file, header, names);
    return nullptr;
  });
}

Napi::Value ModelWrap::SaveSafetensors(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  if (!info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "saveSafetensors(dir, maxShardBytes): dir must be a string, maxShardBytes a number");
  auto dir = info[0].As<Napi::String>().Utf8Value();
  const auto max = static_cast<uint64_t>(checked_int(env, info[1].As<Napi::Number>().DoubleValue(), "saveSafetensors: maxShardBytes", 1, kMaxSafeInteger));
  return Task::run(env, "rpo.Model.saveSafetensors", Lease(env, {{busy_, "Model"}}), [m, dir, max]() -> Task::Finish {
    m->save_safetensors(dir, max);
    return nullptr;
  });
}

Napi::Value ModelWrap::Logits(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  auto batch = row_batch_from_js(info[0]);
  return Task::run(env, "rpo.Model.logits", Lease(env, {{busy_, "Model"}}), [m, batch]() -> Task::Finish {
    auto logits = std::make_shared<std::vector<float>>(m->logits(batch));
    return [logits](Napi::Env env) -> Napi::Value {
      auto arr = Napi::Float32Array::New(env, logits->size());
      std::copy(logits->begin(), logits->end(), arr.Data());
      return arr;
    };
  });
}

Napi::Value ModelWrap::Logprobs(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  auto batch = row_batch_from_js(info[0]);
  auto options = logp_options_from_js(info[1]);
  return Task::run(env, "rpo.Model.logprobs", Lease(env, {{busy_, "Model"}}), [m, batch, options]() -> Task::Finish {
    auto r = m->logprobs(batch, options);
    return [r](Napi::Env env) -> Napi::Value { return row_logps_to_js(env, r); };
  });
}

Napi::Value ModelWrap::Generate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto m = model(env);
  auto prompts = prompts_from_js(info[0]);
  auto options = generate_options_from_js(info[1]);
  auto progress = progress_ = std::make_shared<rpo::GenerateProgress>();
  return Task::run(env, "rpo.Model.generate", Lease(env, {{busy_, "Model"}}), [m, prompts, options, progress]() -> Task::Finish {
    auto r = std::make_shared<rpo::GenerateResult>(m->generate(prompts, options, progress.get()));
    return [r](Napi::Env env) -> Napi::Value {
      auto o = Napi::Object::New(env);
      auto tokens = Napi::Array::New(env, r->tokens.size());
      auto reasons = Napi::Array::New(env, r->tokens.size());
      for (size_t i = 0; i < r->tokens.size(); ++i) {
        auto arr = Napi::Int32Array::New(env, r->tokens[i].size());
        std::copy(r->tokens[i].begin(), r->tokens[i].end(), arr.Data());
        tokens.Set(i, arr);
        reasons.Set(i, r->finish_reasons[i]);
      }
      o.Set("tokens", tokens);
      o.Set("finishReasons", reasons);
      o.Set("steps", static_cast<double>(r->steps));
      o.Set("rowSteps", static_cast<double>(r->row_steps));
      o.Set("graphReplays", static_cast<double>(r->graph_replays));
      return o;
    };
  });
}

// {prompts, tokens} finished so far by the running (or last) generate call; undefined before one.
Napi::Value ModelWrap::GenerateProgress(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!progress_) return env.Undefined();
  auto o = Napi::Object::New(env);
  o.Set("prompts", static_cast<double>(progress_->prompts.load()));
  o.Set("tokens", static_cast<double>(progress_->tokens.load()));
  return o;
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  if (busy_->busy) throw Napi::Error::New(info.Env(), "Model is busy: dispose it after its calls finish");
  model_.reset();
  return info.Env().Undefined();
}

}  // namespace rpo_binding
