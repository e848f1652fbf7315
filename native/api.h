// The engine's surface as the binding sees it: plain structs and opaque handles, no torch
// headers. Binding files include only this and napi.h, so they compile in seconds and
// tensors never leak into the N-API layer.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// The option structs (RopeScaling, ModelConfig, InitOptions, LogpOptions, LoraOptions, LossConfig,
// GenerateOptions, TrainerOptions): declared once in boundary/options.mjs, generated from it.
#include "gen/options.h"

namespace rpo {

// One tensor of a safetensors file: the header was validated in TS; the engine checks the
// byte range against the file again before reading.
struct TensorSpec {
  std::string name;
  std::string file;
  std::string dtype;  // safetensors dtype: F32 | BF16 | F16 | F64 | ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // absolute byte offsets in `file`
  uint64_t end = 0;
};

// One tensor's element range [start, end) of its row-major flattening (model/sharded_io.h).
struct TensorRange {
  std::string name;
  int64_t start = 0, end = 0;
};

// A tensor's bytes held by the caller, for write_safetensors_tensors.
struct TensorBytes {
  std::string name;
  std::string dtype;  // safetensors dtype: F32 | BF16 | F16 | F64
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// model/sharded_io.h through plain values. The ranges of `ranges`, read one after another from
// the checkpoint's tensors into one float32 vector (a rank's flat shard, converted).
std::vector<float> read_safetensors_ranges(const std::vector<TensorSpec>& specs, const std::vector<TensorRange>& ranges);
// Writes `tensors` (state-dict order) as transformers would into `dir` under `stem`; each is
// handed to the writer only when its turn comes, and one whose bytes do not fit its dtype and
// shape fails the write there, leaving `dir` as it was.
void write_safetensors_tensors(const std::string& dir, const std::vector<TensorBytes>& tensors, uint64_t max_shard_bytes,
                               const std::string& stem);

struct ParamInfo {
  std::string name;
  std::string dtype;  // safetensors dtype
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
};

// Rows of token ids, right- or left-padded to seq_len, row-major [rows, seq_len].
// loss_mask[r, t] = 1 when token t of row r is a label (predicted from position t - 1).
struct RowBatch {
  int64_t rows = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> input_ids;
  std::vector<uint8_t> attention_mask;
  std::vector<uint8_t> loss_mask;
  // Unpaired losses (kto, kto-simple, kto-zero): per example (the first rows), 1 desirable,
  // 0 undesirable; empty for every other loss.
  std::vector<uint8_t> desirable;
};

// Per-row log-probs over label positions.
struct RowLogps {
  std::vector<double> sum;
  std::vector<double> mean;
  std::vector<int64_t> count;
};

bool loss_needs_reference(const LossConfig& loss);
bool loss_uses_rationale(const LossConfig& loss);
// Row groups per pair in a batch: 1 (sft, kto-simple, kto-zero: one row per example),
// 2 (chosen, rejected; kto: target, KL), 3 (+ rationale).
int64_t loss_row_groups(const LossConfig& loss);

// The engine's table of losses as plain data (boundary/losses.mjs declares it; the addon's
// lossTable() lets tests check a built addon against lib/gen/loss_table.ts).
struct LossDeclaration {
  std::string name, formula;
  std::string layout;  // sft | paired | unpaired-kl | unpaired
  bool needs_reference = false, policy_mean = false, reference_mean = false;
  std::string rationale;  // "" (loss.rationale chooses) | never | logsigmoid | linear | rationale_form
  bool value_head = false;
  std::vector<std::string> params;  // the parameters it reads
};
std::vector<LossDeclaration> loss_declarations();

// Per-pair log-probs a loss reads. Rows of a batch are ordered
// [chosen x n_pairs, rejected x n_pairs, rationale x n_pairs] (groups the loss uses).
struct PairLogps {
  RowLogps chosen, rejected, rationale;
  std::vector<uint8_t> desirable;  // unpaired losses: per example (chosen holds the examples)
};

struct LossResult {
  double loss = 0.0;
  std::map<std::string, double> metrics;  // docs/design.md names, means over the pairs
  // d loss / d input, for tests: keys "chosen.sum", "chosen.mean", "rejected.sum", ...
  std::map<std::string, std::vector<double>> grads;
};

// Evaluates a loss on given log-probs in float64 with autograd (tests and scripts).
LossResult evaluate_loss(const LossConfig& cfg, const PairLogps& policy, const std::optional<PairLogps>& reference);

// ppo's token-level inputs, [rows, T] row-major (native/loss/ppo.h), for evaluate_ppo.
struct PpoTokens {
  int64_t rows = 0, T = 0;
  std::vector<double> logps, ref_logps, values, old_values, masks;
  std::vector<double> scores;  // [rows]: +1 desirable, -1 undesirable
};
struct PpoResult {
  double loss = 0.0;
  std::map<std::string, double> metrics;
  std::vector<double> grad_logps, grad_values, advantages, discounted_future_rewards;  // [rows, T]
};
// ppo's targets from old_values, then one pass's loss and its gradients w.r.t. logps and values,
// in float64 (tests).
PpoResult evaluate_ppo(const LossConfig& cfg, const PpoTokens& tokens);

// How far a generate call has got, read by another thread while it runs (the progress line).
struct GenerateProgress {
  std::atomic<int64_t> prompts{0};  // prompts finished
  std::atomic<int64_t> tokens{0};   // tokens of the finished prompts
};

struct GenerateResult {
  std::vector<std::vector<int32_t>> tokens;  // per row, without the stop token
  std::vector<std::string> finish_reasons;   // "stop" | "length"
  // What the decode loop computed: decode steps, rows summed over them (a running row is one
  // token chosen; the rest of a step's rows are idle slots up to its row count or CUDA graph
  // bucket), and the steps replayed from a CUDA graph.
  int64_t steps = 0, row_steps = 0, graph_replays = 0;
};

// The sampler's logits processors (repetition penalty, temperature, top-k, top-p, in
// transformers' order) on fp32 logits [rows, vocab], row-major; `context[r]` is row r's prompt and
// tokens so far (what the repetition penalty reads). Masked tokens come back -inf. For tests.
std::vector<float> warp_logits(const std::vector<float>& logits, int64_t rows,
                               const std::vector<std::vector<int32_t>>& context, const GenerateOptions& options);

class ModelImpl;

class Model {
 public:
  static std::shared_ptr<Model> create(const ModelConfig& config, const InitOptions& options);
  ~Model();

  const ModelConfig& config() const;
  std::string dtype() const;
  std::string device() const;
  int64_t num_parameters() const;
  std::vector<ParamInfo> params() const;

  // Copies every tensor from the files; all parameters must be covered exactly once.
  void load(const std::vector<TensorSpec>& tensors);
  // Writes `header` (the safetensors header JSON, already padded) then the named parameters'
  // bytes, in order, to `path` via a temp file + rename.
  void save(const std::string& path, const std::string& header, const std::vector<std::string>& names) const;
  // The parameters as transformers' save_pretrained writes them into `dir`: model.safetensors,
  // or shards of at most max_shard_bytes + model.safetensors.index.json; streamed tensor by
  // tensor, each file atomic, the index last (model/sharded_io.h).
  void save_safetensors(const std::string& dir, uint64_t max_shard_bytes) const;

  // LoRA (model/lora.h): adds adapters and freezes the base; then params() and save() also
  // know the adapters' PEFT keys (adapter_params()), and load_adapters() fills them.
  void add_lora(const LoraOptions& options);
  bool has_lora() const;
  std::vector<ParamInfo> adapter_params() const;
  void load_adapters(const std::vector<TensorSpec>& tensors);
  void merge_lora();  // W += scaling B A; the adapters are gone after

  // Logits [rows, seq_len, vocab] in float32 (parity tests; small inputs only).
  std::vector<float> logits(const RowBatch& batch) const;
  RowLogps logprobs(const RowBatch& batch, const LogpOptions& options) const;
  // Batched generation from token-id prompts (left-padded internally), KV cache.
  // progress: optional, counted as prompts finish (another thread reads it for the progress line).
  GenerateResult generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options,
                          GenerateProgress* progress = nullptr) const;

  ModelImpl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<ModelImpl> impl);
  std::unique_ptr<ModelImpl> impl_;
};

struct StepResult {
  double loss = 0.0;
  // false: the loss was NaN or infinite (found after backward, read in the one device-to-host
  // copy): the micro-step's gradients were dropped when there were none before it; otherwise the
  // accumulated ones are poisoned and the next optimizer step skips its update (non-finite norm).
  bool finite = true;
  std::map<std::string, double> metrics;
  int64_t tokens = 0;  // non-padding tokens the policy processed
  int64_t n_pairs = 0;
};

struct OptimizerStepResult {
  double grad_norm = 0.0;  // global L2 norm before clipping
};

// Stochastic rounding to bfloat16 of each value (returned as float), from a generator seeded with
// `seed`: the rounding bf16-sr applies to weights and moments (tests).
std::vector<float> stochastic_round_bf16(const std::vector<float>& values, uint64_t seed);

class TrainerImpl;

class Trainer {
 public:
  Trainer(std::shared_ptr<Model> policy, std::shared_ptr<Model> reference, const TrainerOptions& options);
  ~Trainer();
  // One micro-batch: forward, loss * scale, backward. `reference` overrides the reference
  // model with precomputed log-probs for the chosen and rejected rows.
  StepResult micro_step(const RowBatch& batch, int64_t n_pairs, double scale, const std::optional<PairLogps>& reference);
  // The same forward and loss without gradients (evaluation).
  StepResult eval_step(const RowBatch& batch, int64_t n_pairs, const std::optional<PairLogps>& reference);
  // Clip (max_grad_norm > 0), step with `lr`, zero grads.
  OptimizerStepResult optimizer_step(double lr, double max_grad_norm);
  // The named parameters' gradients, concatenated, as float64 (tests).
  std::vector<double> grad_snapshot(const std::vector<std::string>& names) const;
  // Optimizer state (moments, step counts) to / from a file; written via temp file + rename.
  // AdamW's moments and masters go beside it, streamed tensor by tensor into optimizer.safetensors
  // (or shards of at most max_shard_bytes + index; train/optimizer_state.cpp).
  // loss=ppo: also the value head and its optimizer state, beside the file. load_state returns
  // warnings (a ppo checkpoint from before the head's optimizer state was saved).
  void save_state(const std::string& path, uint64_t max_shard_bytes) const;
  std::vector<std::string> load_state(const std::string& path);
  TrainerImpl& impl() const { return *impl_; }
  // loss=ppo: the value head from `dir`/value_head.safetensors (evaluating a ppo checkpoint).
  void load_value_head(const std::string& dir);
  // loss=ppo: the gradient-free pass of an optimizer step's micro-batches, in the order
  // micro_step will take them, their advantages whitened over all of them (train/ppo_step.h).
  void ppo_prepare(const std::vector<RowBatch>& batches);

 private:
  StepResult step(const RowBatch& batch, int64_t n_pairs, double scale, const std::optional<PairLogps>& reference,
                  bool backward);
  std::unique_ptr<TrainerImpl> impl_;
};

// Intra-op threads: 1 to max_num_threads(). LibTorch's OpenMP pool (libgomp) aborts or
// segfaults the process when asked for far more threads than it can start (1e5, 1e9), and
// more threads than cores only slow a step down, so the cap is 4 x the hardware threads.
int max_num_threads();
// The default: physical cores (OMP_NUM_THREADS / MKL_NUM_THREADS when set), as LibTorch counts them.
int default_num_threads();
void set_num_threads(int n);
int get_num_threads();
// Runs `job` on the engine's one compute thread and waits for it, rethrowing its exception. Every
// call that does tensor work goes through it (the binding's Task does), so the process has one
// OpenMP team and one malloc arena for the engine, and the thread count is applied in one place.
void run_on_engine_thread(const std::function<void()>& job);
std::string libtorch_version();
// "onednn" or "aten": what fp32 CPU matrix products use in this process (model/gemm.h).
std::string cpu_gemm_backend();
// Sets it ("auto": RPO_CPU_GEMM or oneDNN where usable; "onednn" where not usable: aten) and
// returns the backend now in use: a run applies the one its config records, so a resume computes
// as the original did.
std::string set_cpu_gemm_backend(const std::string& name);
// Whether fp32 CPU products of at most 16 rows (decode steps) run the AVX-512 few-row kernels
// (native/model/skinny_gemm.h): the CPU has AVX-512 and RPO_CPU_SKINNY is not 0.
bool cpu_few_row_kernel();
bool cuda_available();
int cuda_device_count();

// What `rpo info` reports about CUDA. Names, compute capabilities and the driver version come
// from the CUDA runtime when the kernels were built (nvcc brought its headers); a build without
// them reports the device count and LibTorch's CUDA runtime version only.
struct CudaDeviceInfo {
  int index = 0;
  std::string name;             // "" when unknown
  int major = 0, minor = 0;     // compute capability; 0.0 when unknown
  int64_t total_memory = 0;     // bytes; 0 when unknown
  int multiprocessors = 0;
};
struct CudaInfo {
  bool built = false;            // this LibTorch has CUDA and the addon links it (RPO_WITH_CUDA)
  bool kernels = false;          // native/kernels/*.cu were compiled in (RPO_WITH_CUDA_KERNELS)
  bool graphs = false;           // generation's decode step can replay CUDA graphs (RPO_WITH_CUDA_GRAPHS)
  bool available = false;        // a device is usable now
  std::string runtime_version;   // CUDA runtime, "13.0"; "" when unknown
  std::string driver_version;    // the newest CUDA the driver supports, "13.0"; "" when unknown
  bool tf32 = false;             // fp32 matmuls on CUDA may use TF32
  std::vector<CudaDeviceInfo> devices;
};
CudaInfo cuda_info();

// The caching allocator's counters for one device, in bytes (benchmarks).
struct CudaMemoryStats {
  int64_t allocated = 0, reserved = 0, peak_allocated = 0, peak_reserved = 0;
  int64_t free = 0, total = 0;  // the device's, as cudaMemGetInfo reports them
};
CudaMemoryStats cuda_memory_stats(int device);
void cuda_reset_peak_memory(int device);

// TF32 for fp32 matmuls (cuBLAS) and convolutions (cuDNN) on CUDA. The addon turns it on at load
// where a GPU is present (RPO_ALLOW_TF32=0 keeps it off); tests of strict fp32 parity turn it off.
void set_allow_tf32(bool allow);
bool allow_tf32();
// Called once when the addon loads: the CUDA defaults above. Does nothing without a GPU.
void init_cuda_defaults();

}  // namespace rpo
