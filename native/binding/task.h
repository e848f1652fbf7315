// The one way a long engine call reaches JS: an AsyncWorker that runs `work` on the libuv
// pool, turns every C++ exception into a rejected Promise with a readable message, and
// releases the objects it held busy. Nothing thrown by the engine can abort the process.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace rpo_binding {

// Set while an object has a call in flight; checked and flipped on the JS thread only.
struct BusyFlag {
  bool busy = false;
};

// Marks objects busy for the life of one call; throws a JS Error if one already is.
class Lease {
 public:
  Lease(Napi::Env env, std::vector<std::pair<std::shared_ptr<BusyFlag>, std::string>> flags);
  void release();

 private:
  std::vector<std::shared_ptr<BusyFlag>> held_;
};

// The message of any exception in flight (c10::Error without its C++ backtrace).
std::string describe_current_exception();

// Runs `body` (on the JS thread) and rethrows any C++ exception as a JS Error.
template <typename F>
auto guard(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw Napi::Error::New(env, describe_current_exception());
  }
}

class Task : public Napi::AsyncWorker {
 public:
  using Finish = std::function<Napi::Value(Napi::Env)>;
  using Work = std::function<Finish()>;

  // Queues `work`; the Promise resolves with what its Finish returns on the JS thread.
  static Napi::Promise run(Napi::Env env, const char* name, Lease lease, Work work);

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  Task(Napi::Env env, const char* name, Lease lease, Work work);
  Napi::Promise::Deferred deferred_;
  Lease lease_;
  Work work_;
  Finish finish_;
};

}  // namespace rpo_binding
