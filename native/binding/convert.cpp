#include "binding/convert.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace rpo_binding {

namespace {

Napi::TypeError type_error(Napi::Env env, const std::string& where, const char* key, const char* expected) {
  return Napi::TypeError::New(env, where + ": `" + key + "` must be " + expected);
}

template <typename T, napi_typedarray_type kind>
std::vector<T> typed_vector(const Napi::Object& obj, const char* key, const std::string& where,
                                                  const char* expected, bool optional) {
  auto v = obj.Get(key);
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kind) throw type_error(obj.Env(), where, key, expected);
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  return std::vector<T>(arr.Data(), arr.Data() + arr.ElementLength());
}

// A Float64Array, or a plain array of numbers.
std::vector<double> number_vector(const Napi::Object& obj, const char* key, const std::string& where, bool optional) {
  auto v = obj.Get(key);
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    auto arr = v.As<Napi::Float64Array>();
    return std::vector<double>(arr.Data(), arr.Data() + arr.ElementLength());
  }
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    std::vector<double> out(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      auto e = arr.Get(i);
      if (!e.IsNumber()) throw type_error(obj.Env(), where, key, "an array of numbers or a Float64Array");
      out[i] = e.As<Napi::Number>().DoubleValue();
    }
    return out;
  }
  throw type_error(obj.Env(), where, key, "an array of numbers or a Float64Array");
}

// A Float64Array or an array of numbers, each an integer in [min, max] (the key and the index
// are named when one is not).
std::vector<int64_t> int_vector(const Napi::Object& obj, const char* key, const std::string& where, bool optional, int64_t min,
                                int64_t max) {
  std::vector<int64_t> out;
  const auto values = number_vector(obj, key, where, optional);
  for (size_t i = 0; i < values.size(); ++i)
    out.push_back(checked_int(obj.Env(), values[i], where + ": `" + key + "[" + std::to_string(i) + "]`", min, max));
  return out;
}

// A double as JS prints it, so a message quotes the value the caller wrote: NaN, Infinity,
// 2.5, 1000000000 (whole numbers below 1e21 without an exponent, as JS), 1e+300 (else the
// shortest form that reads back).
std::string js_number(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (std::floor(d) == d && std::fabs(d) < 1e21) {
    std::ostringstream s;
    s << std::fixed;
    s.precision(0);
    s << d;
    return s.str();
  }
  std::string out;
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream s;
    s.precision(precision);
    s << d;
    out = s.str();
    if (std::strtod(out.c_str(), nullptr) == d) break;
  }
  return out;
}

}  // namespace

int64_t checked_int(Napi::Env env, double d, const std::string& what, int64_t min, int64_t max) {
  // The comparisons run on doubles: min and max are safe integers, so they convert exactly.
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(min) || d > static_cast<double>(max))
    throw Napi::RangeError::New(env, what + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", got " + js_number(d));
  return static_cast<int64_t>(d);
}

double get_number(const Napi::Object& obj, const char* key, const std::string& where) {
  auto v = obj.Get(key);
  if (!v.IsNumber()) throw type_error(obj.Env(), where, key, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

double get_number_or(const Napi::Object& obj, const char* key, double fallback, const std::string& where) {
  auto v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return get_number(obj, key, where);
}

int64_t get_int(const Napi::Object& obj, const char* key, const std::string& where, int64_t min, int64_t max) {
  return checked_int(obj.Env(), get_number(obj, key, where), where + ": `" + key + "`", min, max);
}

int64_t get_int_or(const Napi::Object& obj, const char* key, int64_t fallback, const std::string& where, int64_t min, int64_t max) {
  auto v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return get_int(obj, key, where, min, max);
}

bool get_bool_or(const Napi::Object& obj, const char* key, bool fallback, const std::string& where) {
  auto v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) throw type_error(obj.Env(), where, key, "a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string get_string(const Napi::Object& obj, const char* key, const std::string& where) {
  auto v = obj.Get(key);
  if (!v.IsString()) throw type_error(obj.Env(), where, key, "a string");
  return v.As<Napi::String>().Utf8Value();
}

std::string get_string_or(const Napi::Object& obj, const char* key, const std::string& fallback, const std::string& where) {
  auto v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return get_string(obj, key, where);
}

Napi::Object get_object(const Napi::Value& value, const std::string& where) {
  if (!value.IsObject()) throw Napi::TypeError::New(value.Env(), where + " must be an object");
  return value.As<Napi::Object>();
}

std::vector<std::string> get_string_array(const Napi::Value& value, const std::string& where) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), where + " must be an array of strings");
  auto arr = value.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    auto e = arr.Get(i);
    if (!e.IsString()) throw Napi::TypeError::New(value.Env(), where + "[" + std::to_string(i) + "] must be a string");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

rpo::ModelConfig model_config_from_js(const Napi::Value& value) {
  const std::string w = "model config";
  auto o = get_object(value, w);
  rpo::ModelConfig c;
  c.architecture = get_string(o, "architecture", w);
  // Sizes: the engine says which must be positive; here only what a cast needs.
  c.vocab_size = get_int(o, "vocab_size", w, 0, kMaxInt32);  // token ids are int32
  c.hidden_size = get_int(o, "hidden_size", w, 0);
  c.intermediate_size = get_int(o, "intermediate_size", w, 0);
  c.num_hidden_layers = get_int(o, "num_hidden_layers", w, 0);
  c.num_attention_heads = get_int(o, "num_attention_heads", w, 0);
  c.num_key_value_heads = get_int(o, "num_key_value_heads", w, 0);
  c.head_dim = get_int(o, "head_dim", w, 0);
  c.rms_norm_eps = get_number(o, "rms_norm_eps", w);
  c.rope_theta = get_number(o, "rope_theta", w);
  c.tie_word_embeddings = get_bool_or(o, "tie_word_embeddings", false, w);
  c.attention_bias = get_bool_or(o, "attention_bias", false, w);
  c.qkv_bias = get_bool_or(o, "qkv_bias", false, w);
  c.sliding_window = get_int_or(o, "sliding_window", 0, w, 0);
  c.max_position_embeddings = get_int_or(o, "max_position_embeddings", 0, w, 0);
  c.initializer_range = get_number_or(o, "initializer_range", 0.02, w);
  c.layer_norm_eps = get_number_or(o, "layer_norm_eps", 1e-5, w);
  c.rotary_pct = get_number_or(o, "rotary_pct", 1.0, w);
  c.use_parallel_residual = get_bool_or(o, "use_parallel_residual", true, w);
  auto rs = o.Get("rope_scaling");
  if (rs.IsObject()) {
    auto r = rs.As<Napi::Object>();
    const std::string rw = "model config rope_scaling";
    c.rope_scaling.rope_type = get_string_or(r, "rope_type", "none", rw);
    c.rope_scaling.factor = get_number_or(r, "factor", 1.0, rw);
    c.rope_scaling.low_freq_factor = get_number_or(r, "low_freq_factor", 1.0, rw);
    c.rope_scaling.high_freq_factor = get_number_or(r, "high_freq_factor", 4.0, rw);
    c.rope_scaling.original_max_position_embeddings = get_int_or(r, "original_max_position_embeddings", 8192, rw, 1);
    const auto& t = c.rope_scaling.rope_type;
    if (t != "none" && t != "linear" && t != "llama3")
      throw Napi::TypeError::New(value.Env(), "model config: unsupported rope_scaling type \"" + t + "\"");
  }
  return c;
}

Napi::Object model_config_to_js(Napi::Env env, const rpo::ModelConfig& c) {
  auto o = Napi::Object::New(env);
  o.Set("architecture", c.architecture);
  o.Set("vocab_size", static_cast<double>(c.vocab_size));
  o.Set("hidden_size", static_cast<double>(c.hidden_size));
  o.Set("intermediate_size", static_cast<double>(c.intermediate_size));
  o.Set("num_hidden_layers", static_cast<double>(c.num_hidden_layers));
  o.Set("num_attention_heads", static_cast<double>(c.num_attention_heads));
  o.Set("num_key_value_heads", static_cast<double>(c.num_key_value_heads));
  o.Set("head_dim", static_cast<double>(c.head_dim));
  o.Set("rms_norm_eps", c.rms_norm_eps);
  o.Set("rope_theta", c.rope_theta);
  auto rs = Napi::Object::New(env);
  rs.Set("rope_type", c.rope_scaling.rope_type);
  rs.Set("factor", c.rope_scaling.factor);
  rs.Set("low_freq_factor", c.rope_scaling.low_freq_factor);
  rs.Set("high_freq_factor", c.rope_scaling.high_freq_factor);
  rs.Set("original_max_position_embeddings", static_cast<double>(c.rope_scaling.original_max_position_embeddings));
  o.Set("rope_scaling", rs);
  o.Set("tie_word_embeddings", c.tie_word_embeddings);
  o.Set("attention_bias", c.attention_bias);
  o.Set("qkv_bias", c.qkv_bias);
  o.Set("sliding_window", static_cast<double>(c.sliding_window));
  o.Set("max_position_embeddings", static_cast<double>(c.max_position_embeddings));
  o.Set("initializer_range", c.initializer_range);
  if (c.architecture == "GPTNeoXForCausalLM") {  // the Llama family's config has no such keys
    o.Set("layer_norm_eps", c.layer_norm_eps);
    o.Set("rotary_pct", c.rotary_pct);
    o.Set("use_parallel_residual", c.use_parallel_residual);
  }
  return o;
}

rpo::InitOptions init_options_from_js(const Napi::Value& value) {
  rpo::InitOptions opts;
  if (value.IsUndefined() || value.IsNull()) return opts;
  const std::string w = "model options";
  auto o = get_object(value, w);
  opts.dtype = get_string_or(o, "dtype", opts.dtype, w);
  opts.device = get_string_or(o, "device", opts.device, w);
  opts.seed = static_cast<uint64_t>(get_int_or(o, "seed", 0, w, 0));
  return opts;
}

std::vector<rpo::TensorSpec> tensor_specs_from_js(const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), "load: expected an array of tensor specs");
  auto arr = value.As<Napi::Array>();
  std::vector<rpo::TensorSpec> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string w = "load: tensors[" + std::to_string(i) + "]";
    auto o = get_object(arr.Get(i), w);
    rpo::TensorSpec s;
    s.name = get_string(o, "name", w);
    s.file = get_string(o, "file", w);
    s.dtype = get_string(o, "dtype", w);
    auto shape = o.Get("shape");
    if (!shape.IsArray()) throw type_error(value.Env(), w, "shape", "an array of integers");
    auto sa = shape.As<Napi::Array>();
    for (uint32_t j = 0; j < sa.Length(); ++j) {
      auto e = sa.Get(j);
      if (!e.IsNumber()) throw type_error(value.Env(), w, "shape", "an array of non-negative integers");
      s.shape.push_back(checked_int(value.Env(), e.As<Napi::Number>().DoubleValue(), w + ": `shape[" + std::to_string(j) + "]`", 0, kMaxSafeInteger));
    }
    s.begin = static_cast<uint64_t>(get_int(o, "begin", w, 0));
    s.end = static_cast<uint64_t>(get_int(o, "end", w, 0));
    out.push_back(std::move(s));
  }
  return out;
}

rpo::RowBatch row_batch_from_js(const Napi::Value& value) {
  const std::string w = "batch";
  auto o = get_object(value, w);
  rpo::RowBatch b;
  // int32 bounds keep rows x seqLen far from int64 overflow.
  b.rows = get_int(o, "rows", w, 0, kMaxInt32);
  b.seq_len = get_int(o, "seqLen", w, 0, kMaxInt32);
  b.input_ids = typed_vector<int32_t, napi_int32_array>(o, "inputIds", w, "an Int32Array", false);
  b.attention_mask = typed_vector<uint8_t, napi_uint8_array>(o, "attentionMask", w, "a Uint8Array", false);
  b.loss_mask = typed_vector<uint8_t, napi_uint8_array>(o, "lossMask", w, "a Uint8Array", true);
  b.desirable = typed_vector<uint8_t, napi_uint8_array>(o, "desirable", w, "a Uint8Array", true);
  return b;
}

rpo::LogpOptions logp_options_from_js(const Napi::Value& value) {
  rpo::LogpOptions opts;
  if (value.IsUndefined() || value.IsNull()) return opts;
  const std::string w = "log-prob options";
  auto o = get_object(value, w);
  opts.chunk_tokens = get_int_or(o, "chunkTokens", opts.chunk_tokens, w, 1);
  opts.naive = get_bool_or(o, "naive", false, w);
  opts.adapters = get_bool_or(o, "adapters", true, w);
  return opts;
}

rpo::LossConfig loss_config_from_js(const Napi::Value& value) {
  const std::string w = "loss config";
  auto o = get_object(value, w);
  rpo::LossConfig c;
  c.name = get_string(o, "name", w);
  c.beta = get_number_or(o, "beta", c.beta, w);
  c.gamma = get_number_or(o, "gamma", c.gamma, w);
  c.epsilon = get_number_or(o, "epsilon", c.epsilon, w);
  c.lambda = get_number_or(o, "lambda", c.lambda, w);
  c.margin = get_number_or(o, "margin", c.margin, w);
  c.rationale_form = get_string_or(o, "rationale_form", c.rationale_form, w);
  if (c.rationale_form != "code" && c.rationale_form != "paper")
    throw Napi::TypeError::New(value.Env(), "loss config: `rationale_form` must be \"code\" or \"paper\", got \"" + c.rationale_form + "\"");
  c.rationale = get_string_or(o, "rationale", c.rationale, w);
  c.desirable_weight = get_number_or(o, "desirable_weight", c.desirable_weight, w);
  c.undesirable_weight = get_number_or(o, "undesirable_weight", c.undesirable_weight, w);
  c.ppo_epochs = get_int_or(o, "ppo_epochs", c.ppo_epochs, w, 1);
  c.cliprange = get_number_or(o, "cliprange", c.cliprange, w);
  c.lam = get_number_or(o, "lam", c.lam, w);
  c.critic_coef = get_number_or(o, "critic_coef", c.critic_coef, w);
  c.KL_coef = get_number_or(o, "KL_coef", c.KL_coef, w);
  return c;
}

rpo::PpoTokens ppo_tokens_from_js(const Napi::Value& value) {
  const std::string w = "evaluatePpo: tokens";
  auto o = get_object(value, w);
  rpo::PpoTokens t;
  t.rows = get_int_or(o, "rows", 0, w, 1);
  t.T = get_int_or(o, "T", 0, w, 1);
  t.logps = number_vector(o, "logps", w, false);
  t.ref_logps = number_vector(o, "refLogps", w, false);
  t.values = number_vector(o, "values", w, false);
  t.old_values = number_vector(o, "oldValues", w, false);
  t.masks = number_vector(o, "masks", w, false);
  t.scores = number_vector(o, "scores", w, false);
  return t;
}

rpo::RowLogps row_logps_from_js(const Napi::Value& value, const std::string& where) {
  auto o = get_object(value, where);
  rpo::RowLogps r;
  r.sum = number_vector(o, "sum", where, false);
  r.mean = number_vector(o, "mean", where, true);
  r.count = int_vector(o, "count", where, true, 0, kMaxSafeInteger);
  return r;
}

rpo::PairLogps pair_logps_from_js(const Napi::Value& value, const std::string& where) {
  auto o = get_object(value, where);
  rpo::PairLogps p;
  for (auto [key, dst] : {std::pair<const char*, rpo::RowLogps*>{"chosen", &p.chosen}, {"rejected", &p.rejected}, {"rationale", &p.rationale}}) {
    auto v = o.Get(key);
    if (!v.IsUndefined() && !v.IsNull()) *dst = row_logps_from_js(v, where + "." + key);
  }
  p.desirable = typed_vector<uint8_t, napi_uint8_array>(o, "desirable", where, "a Uint8Array", true);
  return p;
}

std::vector<std::vector<int32_t>> prompts_from_js(const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), "generate: prompts must be an array of Int32Arrays");
  auto arr = value.As<Napi::Array>();
  std::vector<std::vector<int32_t>> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    auto e = arr.Get(i);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(value.Env(), "generate: prompts[" + std::to_string(i) + "] must be an Int32Array");
    auto ta = e.As<Napi::Int32Array>();
    out.emplace_back(ta.Data(), ta.Data() + ta.ElementLength());
  }
  return out;
}

rpo::GenerateOptions generate_options_from_js(const Napi::Value& value) {
  const std::string w = "generate options";
  auto o = get_object(value, w);
  rpo::GenerateOptions g;
  g.max_new_tokens = get_int_or(o, "maxNewTokens", 0, w, 0);
  g.max_length = get_int_or(o, "maxLength", 0, w, 0);
  g.do_sample = get_bool_or(o, "doSample", true, w);
  g.temperature = get_number_or(o, "temperature", 1.0, w);
  g.top_p = get_number_or(o, "topP", 1.0, w);
  g.top_k = get_int_or(o, "topK", 0, w, 0);
  g.repetition_penalty = get_number_or(o, "repetitionPenalty", 1.0, w);
  g.slots = get_int_or(o, "slots", 0, w, 0);
  g.first_prompt_index = get_int_or(o, "firstPromptIndex", 0, w, 0);
  // Token ids: whether they are inside the vocabulary is the model's check (Model::generate).
  g.stop_token_ids = int_vector(o, "stopTokenIds", w, true, 0, kMaxInt32);
  g.pad_token_id = get_int_or(o, "padTokenId", 0, w, 0, kMaxInt32);
  g.seed = static_cast<uint64_t>(get_int_or(o, "seed", 0, w, 0));
  g.use_cache = get_bool_or(o, "useCache", true, w);
  return g;
}

Napi::Float64Array to_float64_array(Napi::Env env, const std::vector<double>& v) {
  auto arr = Napi::Float64Array::New(env, v.size());
  std::copy(v.begin(), v.end(), arr.Data());
  return arr;
}

Napi::Object row_logps_to_js(Napi::Env env, const rpo::RowLogps& r) {
  auto o = Napi::Object::New(env);
  o.Set("sum", to_float64_array(env, r.sum));
  o.Set("mean", to_float64_array(env, r.mean));
  o.Set("count", to_float64_array(env, std::vector<double>(r.count.begin(), r.count.end())));
  return o;
}

Napi::Object metrics_to_js(Napi::Env env, const std::map<std::string, double>& metrics) {
  auto o = Napi::Object::New(env);
  for (auto& [k, v] : metrics) o.Set(k, v);
  return o;
}

Napi::Array params_to_js(Napi::Env env, const std::vector<rpo::ParamInfo>& params) {
  auto arr = Napi::Array::New(env, params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    auto o = Napi::Object::New(env);
    o.Set("name", params[i].name);
    o.Set("dtype", params[i].dtype);
    auto shape = Napi::Array::New(env, params[i].shape.size());
    for (size_t j = 0; j < params[i].shape.size(); ++j) shape.Set(j, static_cast<double>(params[i].shape[j]));
    o.Set("shape", shape);
    o.Set("nbytes", static_cast<double>(params[i].nbytes));
    arr.Set(i, o);
  }
  return arr;
}

}  // namespace rpo_binding
