// Data parallelism on PyTorch's c10d: the binding's view (plain types, no torch headers).
//
// A ProcessGroup is one rank's membership of a job: a TCPStore rendezvous at master_addr:port
// (rank 0 serves it), then ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, when the LibTorch
// and the build have it). GradSync sums the policy's gradients across ranks in buckets, launched
// from autograd hooks as the last micro-step's backward fills them (docs/distributed.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rpo {

class Model;

struct DistOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Rendezvous and every collective give up after this long (a dead or absent rank).
  int64_t timeout_ms = 300000;
  std::string backend = "gloo";  // gloo | nccl
  int device_index = 0;          // nccl: the CUDA device of this rank (LOCAL_RANK)
};

// Whether this addon was built with c10d Gloo (libgloo-dev present at build time), and if not,
// what to install.
bool dist_available();
std::string dist_unavailable_reason();
bool dist_nccl_available();

class ProcessGroupImpl;

class ProcessGroup {
 public:
  static std::shared_ptr<ProcessGroup> create(const DistOptions& options);
  ~ProcessGroup();
  int rank() const;
  int world_size() const;
  const std::string& backend() const;
  // Element-wise over ranks, in float64: op sum | max | min. Every rank gets the same result.
  std::vector<double> all_reduce(const std::vector<double>& values, const std::string& op);
  void barrier();
  // The rendezvous store: small strings every rank can read (rank 0's decisions, error notes).
  void store_set(const std::string& key, const std::string& value);
  std::string store_get(const std::string& key);  // waits up to the timeout for the key
  ProcessGroupImpl& impl() const { return *impl_; }

 private:
  explicit ProcessGroup(std::unique_ptr<ProcessGroupImpl> impl);
  std::unique_ptr<ProcessGroupImpl> impl_;
};

struct GradSyncResult {
  double wait_seconds = 0.0;  // time finish() waited for collectives: communication not hidden
  int64_t buckets = 0;
  int64_t bytes = 0;            // float32 bytes all-reduced
  int64_t launched_early = 0;   // buckets launched during backward (the rest at finish)
  int64_t resent = 0;           // buckets sent again by finish: a gradient grew after its bucket left
  int64_t settled_early = 0;    // ZeRO-2: buckets whose reduce was seen complete (buffer dropped) during backward
};

class GradSyncImpl;
class Trainer;
class ZeroShard;

// Sums the gradients of `policy`'s parameters across the group's ranks. Call arm() before the
// last micro-step of an optimizer step (its backward then launches each bucket's all-reduce as
// soon as every parameter in it has its gradient), then finish() before the optimizer step:
// it launches what backward did not, waits, and writes the sums back into the gradients.
class GradSync {
 public:
  GradSync(std::shared_ptr<Model> policy, std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes);
  ~GradSync();
  void arm();
  GradSyncResult finish();
  // ZeRO-2: from now on each bucket holds one owner's parameters and is reduced to that rank
  // only; its gradients are freed on every rank when it is launched (during backward), its buffer
  // as soon as the reduce completes, and the owner keeps the sums as its gradients (not armed).
  void reduce_to_owners(const ZeroShard& zero);
  // loss=ppo: the trainer's value head (replicated, stepped by every rank with its own optimizer)
  // has its gradients all-reduced by finish() too, and ppo_prepare whitens the advantages with
  // the statistics of every rank's micro-batches. Not armed; the trainer must outlive the sync.
  void attach_value_head(std::shared_ptr<Trainer> trainer);

 private:
  std::unique_ptr<GradSyncImpl> impl_;
};

class ZeroShardImpl;

struct ZeroPlan {
  int64_t owned_params = 0;  // parameters (tensors) this rank updates
  int64_t owned_numel = 0;   // their elements
  int64_t total_numel = 0;
  int64_t state_bytes_per_element = 0;  // AdamW moments (+ fp32 master in bf16-mixed)
  int64_t grad_bytes_per_element = 0;   // a gradient's element (the trainable dtype)
  int stage = 1;
};

// ZeRO stage 1: each rank keeps the AdamW state (and bf16-mixed's fp32 master weights) of its
// share of the parameters only (contiguous in parameter order, balanced by elements) and updates
// only those; the clip norm still covers every gradient (summed by GradSync), so the update of
// each parameter is the single process's. After the optimizer step, broadcast_params() sends each
// parameter from its owner to every rank. Checkpoints stay in the one-process format: before
// rank 0 writes one, gather_state() sends it the other shards (then release_state() drops them),
// and a checkpoint loaded before a ZeroShard is made is cut down to the rank's share, so a run
// resumes with any world size.
//
// Stage 2 also shards the gradients: GradSync::reduce_to_owners() reduces each gradient to its
// owner instead of all-reducing it, and the clip norm is put together from per-parameter norms
// summed over the ranks (bit for bit the single process's).
class ZeroShard {
 public:
  ZeroShard(std::shared_ptr<Trainer> trainer, std::shared_ptr<ProcessGroup> group, int stage = 1);
  ~ZeroShard();
  const ZeroPlan& plan() const;
  void broadcast_params();
  void gather_state();
  void release_state();
  // Elements of AdamW state this rank holds now (tests).
  int64_t state_numel() const;
  // The rank owning the parameter whose TensorImpl is `tensor_impl`; -1 when it is not trained.
  int owner_of(const void* tensor_impl) const;

 private:
  std::unique_ptr<ZeroShardImpl> impl_;
};

}  // namespace rpo
