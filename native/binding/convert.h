// JS values <-> the engine's plain structs. Every getter names the key it was reading when
// a value has the wrong type, so a bad option is a TypeError a user can act on.
#pragma once

#include <napi.h>

#include "api.h"
#include "gen/options_js.h"

namespace rpo_binding {

double get_number(const Napi::Object& obj, const char* key, const std::string& where);
double get_number_or(const Napi::Object& obj, const char* key, double fallback, const std::string& where);

// The largest integer a JS number holds exactly (Number.MAX_SAFE_INTEGER): the default upper
// bound of an integer option, well inside int64_t, so no conversion below is undefined.
constexpr int64_t kMaxSafeInteger = 9007199254740991;
// Token ids, rows and sequence lengths live in int32 buffers.
constexpr int64_t kMaxInt32 = 2147483647;

// An integer option: a number that is finite, whole and in [min, max], else a RangeError naming
// `what` (e.g. "generate options: `maxNewTokens`"), the range and the value. A cast of NaN,
// Infinity or 1e300 to an integer is undefined behaviour in C++, so nothing is cast unchecked.
int64_t checked_int(Napi::Env env, double value, const std::string& what, int64_t min, int64_t max);
int64_t get_int(const Napi::Object& obj, const char* key, const std::string& where, int64_t min = -kMaxSafeInteger,
                int64_t max = kMaxSafeInteger);
int64_t get_int_or(const Napi::Object& obj, const char* key, int64_t fallback, const std::string& where, int64_t min = -kMaxSafeInteger,
                   int64_t max = kMaxSafeInteger);
bool get_bool_or(const Napi::Object& obj, const char* key, bool fallback, const std::string& where);
std::string get_string(const Napi::Object& obj, const char* key, const std::string& where);
std::string get_string_or(const Napi::Object& obj, const char* key, const std::string& fallback, const std::string& where);
Napi::Object get_object(const Napi::Value& value, const std::string& where);
std::vector<std::string> get_string_array(const Napi::Value& value, const std::string& where);

// The option structs' readers and writers (model_config_from_js, trainer_options_from_js, ...)
// are generated: gen/options_js.h, from boundary/options.mjs.

std::vector<rpo::TensorSpec> tensor_specs_from_js(const Napi::Value& value);
rpo::RowBatch row_batch_from_js(const Napi::Value& value);
rpo::PpoTokens ppo_tokens_from_js(const Napi::Value& value);
rpo::RowLogps row_logps_from_js(const Napi::Value& value, const std::string& where);
rpo::PairLogps pair_logps_from_js(const Napi::Value& value, const std::string& where);

std::vector<std::vector<int32_t>> prompts_from_js(const Napi::Value& value);

Napi::Float64Array to_float64_array(Napi::Env env, const std::vector<double>& v);
Napi::Object row_logps_to_js(Napi::Env env, const rpo::RowLogps& r);
Napi::Object metrics_to_js(Napi::Env env, const std::map<std::string, double>& metrics);
Napi::Array params_to_js(Napi::Env env, const std::vector<rpo::ParamInfo>& params);

}  // namespace rpo_binding
