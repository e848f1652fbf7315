// One rank's process group: TCPStore rendezvous, then c10d's Gloo (CPU) or NCCL (CUDA) backend.
// Built with RPO_WITH_GLOO only where the gloo headers were found (CMakeLists.txt): pip's torch
// carries gloo's code in libtorch_cpu but not its headers, which ProcessGroupGloo.hpp includes.
#include <ATen/ATen.h>
#include <c10/util/Logging.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "parallel/dist.h"
#include "parallel/process_group_impl.h"

#ifdef RPO_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace rpo {

bool dist_available() {
#ifdef RPO_WITH_GLOO
  return true;
#else
  return false;
#endif
}

std::string dist_unavailable_reason() {
#ifdef RPO_WITH_GLOO
  return "";
#else
  return "this rpo addon was built without data parallelism: the gloo headers (<gloo/context.h>) were not found at build "
         "time. Install them (Debian/Ubuntu: `sudo apt-get install libgloo-dev`) and rebuild with `npm run build:native`";
#endif
}

bool dist_nccl_available() {
#ifdef RPO_WITH_NCCL
  return true;
#else
  return false;
#endif
}

#ifdef RPO_WITH_GLOO
// ProcessGroupNCCL lives in process_group_nccl.cpp (its headers need CUDA's and nccl.h).
#ifdef RPO_WITH_NCCL
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, const DistOptions& o);
#endif

namespace {

std::string where(const DistOptions& o) { return o.master_addr + ":" + std::to_string(o.master_port); }

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

// The address this rank's Gloo pairs listen on: GLOO_SOCKET_IFNAME (as torch reads it), else
// loopback for a loopback master (one machine), else this host's name (LibTorch's default).
std::shared_ptr<::gloo::transport::Device> gloo_device(const DistOptions& o) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (is_loopback(o.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// c10d logs a warning with the exception's whole C++ stack (16 "frame #N" lines) for each store
// read or write that fails: when rank 0 died, the survivors printed that before rpo's message,
// which already says what happened ("rank 0, which serves the rendezvous store, is gone"). So
// c10's warnings are off in a rank (errors stay on), unless TORCH_CPP_LOG_LEVEL asks otherwise.
void quiet_c10_warnings() {
  const char* level = std::getenv("TORCH_CPP_LOG_LEVEL");
  if (level && *level) return;
  FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, static_cast<int>(c10::GLOG_ERROR));
}

c10::intrusive_ptr<c10d::Store> rendezvous(const DistOptions& o) {
  quiet_c10_warnings();
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(o.master_port);
  so.isServer = o.rank == 0;
  so.numWorkers = static_cast<size_t>(o.world_size);
  so.waitWorkers = true;
  so.timeout = std::chrono::milliseconds(o.timeout_ms);
  std::ostringstream secs_text;
  secs_text << static_cast<double>(o.timeout_ms) / 1000.0;  // 3, 2.5, 300
  const std::string secs = secs_text.str();
  try {
    return c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (const std::exception& e) {
    const std::string first = std::string(e.what()).substr(0, std::string(e.what()).find('\n'));
    if (o.rank == 0)
      throw std::runtime_error("distributed: rank 0 could not serve the rendezvous on " + where(o) + " or not all " +
                               std::to_string(o.world_size) + " ranks joined within " + secs +
                               " s (MASTER_PORT in use, or ranks missing?): " + first);
    throw std::runtime_error("distributed: rank " + std::to_string(o.rank) + " could not reach the rendezvous at " + where(o) +
                             " within " + secs + " s (check MASTER_ADDR and MASTER_PORT, and that rank 0 runs): " + first);
  }
}

c10d::ReduceOp reduce_op(const std::string& op) {
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  throw std::invalid_argument("distributed: allReduce op must be sum, max or min, not \"" + op + "\"");
}

}  // namespace

void ProcessGroupImpl::run(c10::intrusive_ptr<c10d::Work> work, const char* what) const {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw collective_error(what, e.what());
  }
}

// After a failed collective: which ranks are gone? Each survivor checks in under rpo/alive/<rank>
// in the store and, for a few seconds, looks for the others' check-ins; whoever never shows up
// is named. Rank 0 serves the store: when it is gone, nothing answers, and that is said instead.
std::string ProcessGroupImpl::missing_ranks() const {
  using clock = std::chrono::steady_clock;
  try {
    store->set("rpo/alive/" + std::to_string(options.rank), std::vector<uint8_t>{1});
    std::vector<bool> seen(options.world_size, false);
    seen[options.rank] = true;
    const auto deadline = clock::now() + std::chrono::seconds(5);
    for (;;) {
      bool all = true;
      for (int r = 0; r < options.world_size; ++r) {
        if (!seen[r]) seen[r] = store->check({"rpo/alive/" + std::to_string(r)});
        all = all && seen[r];
      }
      if (all || clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::string out;
    for (int r = 0; r < options.world_size; ++r)
      if (!seen[r]) out += (out.empty() ? "" : ", ") + std::to_string(r);
    if (out.empty()) return "every rank still answers the rendezvous store (a timeout?)";
    return "rank(s) " + out + " did not answer within 5 s (exited or hung)";
  } catch (const std::exception&) {
    return "rank 0, which serves the rendezvous store at " + options.master_addr + ":" + std::to_string(options.master_port) + ", is gone";
  }
}

std::runtime_error ProcessGroupImpl::collective_error(const char* what, const std::string& detail) const {
  const std::string first = detail.substr(0, detail.find('\n'));
  return std::runtime_error("distributed: " + std::string(what) + " failed on rank " + std::to_string(options.rank) + " of " +
                            std::to_string(options.world_size) + ": " + missing_ranks() + ". (" + first + ")");
}

at::Tensor ProcessGroupImpl::to_comm(const at::Tensor& t) const {
  return options.backend == "nccl" ? t.to(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(options.device_index))) : t;
}

ProcessGroup::ProcessGroup(std::unique_ptr<ProcessGroupImpl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistOptions& o) {
  if (o.world_size < 1) throw std::invalid_argument("distributed: WORLD_SIZE must be >= 1, not " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw std::invalid_argument("distributed: RANK " + std::to_string(o.rank) + " is not in [0, WORLD_SIZE " + std::to_string(o.world_size) + ")");
  if (o.master_port < 1 || o.master_port > 65535)
    throw std::invalid_argument("distributed: MASTER_PORT " + std::to_string(o.master_port) + " is not a port (1-65535)");
  if (o.timeout_ms < 1) throw std::invalid_argument("distributed: the timeout must be positive");
  auto impl = std::make_unique<ProcessGroupImpl>();
  impl->options = o;
  impl->store = rendezvous(o);
  if (o.backend == "gloo") {
    auto go = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(o.timeout_ms));
    go->devices.push_back(gloo_device(o));
    try {
      impl->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, o.rank, o.world_size, go);
    } catch (const std::exception& e) {
      throw impl->collective_error("connecting Gloo", e.what());
    }
  } else if (o.backend == "nccl") {
#ifdef RPO_WITH_NCCL
    impl->backend = make_nccl_backend(impl->store, o);
#else
    throw std::runtime_error("distributed: backend nccl needs an addon built against a CUDA LibTorch with nccl.h found "
                             "(pip's nvidia-nccl wheel); this one has Gloo only");
#endif
  } else {
    throw std::invalid_argument("distributed: backend must be gloo or nccl, not \"" + o.backend + "\"");
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->options.rank; }
int ProcessGroup::world_size() const { return impl_->options.world_size; }
const std::string& ProcessGroup::backend() const { return impl_->options.backend; }

std::vector<double> ProcessGroup::all_reduce(const std::vector<double>& values, const std::string& op) {
  const auto rop = reduce_op(op);
  if (values.empty()) return {};
  auto t = impl_->to_comm(at::tensor(values, at::kDouble));
  std::vector<at::Tensor> ts{t};
  c10d::AllreduceOptions ao;
  ao.reduceOp = rop;
  impl_->run(impl_->backend->allreduce(ts, ao), "allReduce");
  auto h = ts[0].cpu().contiguous();
  return std::vector<double>(h.data_ptr<double>(), h.data_ptr<double>() + h.numel());
}

void ProcessGroup::barrier() {
  // An all-reduce of one value: a barrier the same way on both backends.
  all_reduce({0.0}, "sum");
}

void ProcessGroup::store_set(const std::string& key, const std::string& value) {
  impl_->store->set("rpo/" + key, std::vector<uint8_t>(value.begin(), value.end()));
}

std::string ProcessGroup::store_get(const std::string& key) {
  try {
    auto v = impl_->store->get("rpo/" + key);
    return std::string(v.begin(), v.end());
  } catch (const std::exception& e) {
    throw impl_->collective_error(("reading \"" + key + "\" from the rendezvous store").c_str(), e.what());
  }
}

#else  // no gloo headers at build time: every entry point says what to install

ProcessGroup::ProcessGroup(std::unique_ptr<ProcessGroupImpl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;
std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistOptions&) { throw std::runtime_error(dist_unavailable_reason()); }
int ProcessGroup::rank() const { return 0; }
int ProcessGroup::world_size() const { return 1; }
const std::string& ProcessGroup::backend() const {
  static const std::string none = "none";
  return none;
}
std::vector<double> ProcessGroup::all_reduce(const std::vector<double>&, const std::string&) { throw std::runtime_error(dist_unavailable_reason()); }
void ProcessGroup::barrier() { throw std::runtime_error(dist_unavailable_reason()); }
void ProcessGroup::store_set(const std::string&, const std::string&) { throw std::runtime_error(dist_unavailable_reason()); }
std::string ProcessGroup::store_get(const std::string&) { throw std::runtime_error(dist_unavailable_reason()); }

#endif

}  // namespace rpo
