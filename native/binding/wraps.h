// The JS classes Model and Trainer.
#pragma once

#include <napi.h>

#include <memory>

#include "api.h"
#include "binding/task.h"

namespace rpo_binding {

struct AddonData {
  Napi::FunctionReference model_ctor;
  Napi::FunctionReference trainer_ctor;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports, AddonData& data);
  explicit ModelWrap(const Napi::CallbackInfo& info);

  // The model, or a JS Error if it was disposed.
  std::shared_ptr<rpo::Model> model(Napi::Env env) const;
  std::shared_ptr<BusyFlag> busy() const { return busy_; }
  static ModelWrap* unwrap(Napi::Env env, const Napi::Value& value, const char* what);

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value GetConfig(const Napi::CallbackInfo& info);
  Napi::Value GetDtype(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetNumParameters(const Napi::CallbackInfo& info);
  Napi::Value Params(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value SaveSafetensors(const Napi::CallbackInfo& info);
  Napi::Value Logits(const Napi::CallbackInfo& info);
  Napi::Value Logprobs(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value GenerateProgress(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // LoRA (lora_wrap.cpp)
  Napi::Value AddLora(const Napi::CallbackInfo& info);
  Napi::Value AdapterParams(const Napi::CallbackInfo& info);
  Napi::Value LoadAdapters(const Napi::CallbackInfo& info);
  Napi::Value MergeLora(const Napi::CallbackInfo& info);

  std::shared_ptr<rpo::Model> model_;
  std::shared_ptr<BusyFlag> busy_ = std::make_shared<BusyFlag>();
  // The running (or last) generate call's progress, read while it runs.
  std::shared_ptr<rpo::GenerateProgress> progress_;
};

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports, AddonData& data);
  explicit TrainerWrap(const Napi::CallbackInfo& info);
  // For the data-parallel wraps (dist_wrap.cpp): the trainer, and the flags a call on it holds.
  std::shared_ptr<rpo::Trainer> shared_trainer(Napi::Env env) const { return trainer(env); }
  std::shared_ptr<BusyFlag> busy() const { return busy_; }
  std::shared_ptr<BusyFlag> policy_busy() const { return policy_busy_; }

 private:
  Napi::Value MicroStep(const Napi::CallbackInfo& info);
  Napi::Value EvalStep(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info, bool backward);
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info);
  Napi::Value GradSnapshot(const Napi::CallbackInfo& info);
  Napi::Value SaveState(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  Napi::Value LoadValueHead(const Napi::CallbackInfo& info);
  Napi::Value PpoPrepare(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<rpo::Trainer> trainer(Napi::Env env) const;
  Lease lease(Napi::Env env) const;

  std::shared_ptr<rpo::Trainer> trainer_;
  std::shared_ptr<BusyFlag> busy_ = std::make_shared<BusyFlag>();
  std::shared_ptr<BusyFlag> policy_busy_, reference_busy_;
};

}  // namespace rpo_binding
