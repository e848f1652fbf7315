#include "binding/task.h"

#include <c10/util/Exception.h>

#include <exception>

#include "api.h"

namespace rpo_binding {

Lease::Lease(Napi::Env env, std::vector<std::pair<std::shared_ptr<BusyFlag>, std::string>> flags) {
  for (auto& [flag, what] : flags) {
    if (!flag) continue;
    if (flag->busy) {
      release();
      throw Napi::Error::New(env, what + " is busy: another call on it has not finished (await it first)");
    }
    flag->busy = true;
    held_.push_back(flag);
  }
}

void Lease::release() {
  for (auto& f : held_) f->busy = false;
  held_.clear();
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown C++ exception";
  }
}

Task::Task(Napi::Env env, const char* name, Lease lease, Work work)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), lease_(std::move(lease)), work_(std::move(work)) {}

Napi::Promise Task::run(Napi::Env env, const char* name, Lease lease, Work work) {
  auto* task = new Task(env, name, std::move(lease), std::move(work));
  auto promise = task->deferred_.Promise();
  task->Queue();  // libuv owns it now; it deletes itself after OnOK / OnError
  return promise;
}

void Task::Execute() {
  try {
    // On the engine's own thread, not this libuv worker (see run_on_engine_thread).
    rpo::run_on_engine_thread([this] { finish_ = work_(); });
  } catch (...) {
    SetError(describe_current_exception());
  }
}

void Task::OnOK() {
  lease_.release();
  Napi::Env env = Env();
  try {
    deferred_.Resolve(finish_ ? finish_(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (...) {
    deferred_.Reject(Napi::Error::New(env, describe_current_exception()).Value());
  }
}

void Task::OnError(const Napi::Error& error) {
  lease_.release();
  deferred_.Reject(error.Value());
}

}  // namespace rpo_binding
