// The JS classes ProcessGroup and GradSync (native/dist): data parallelism on c10d.
#pragma once

#include <napi.h>

namespace rpo_binding {

void init_dist(Napi::Env env, Napi::Object exports);

}  // namespace rpo_binding
