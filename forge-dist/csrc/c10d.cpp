// forge's door to libtorch's c10d: a TCPStore rendezvous and a Gloo process
// group, with the collectives forge-dist needs on flat tensors. Called from
// forge-dist/src/engine.rs, which owns every handle made here.
//
// Every entry point catches all exceptions and reports them as a message
// (a malloc'd string the caller frees with forge_c10d_free_string): nothing
// here aborts the process. Tensors arrive as tch's `C_tensor` pointers,
// which are `at::Tensor*`.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::chrono::milliseconds timeout;
};

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, s.c_str(), s.size() + 1);
  }
  return out;
}

// Runs `body`; returns nullptr on success, else the error message.
template <typename F>
char* guarded(F body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return copy_string(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return copy_string(e.what());
  } catch (...) {
    return copy_string("unknown C++ exception");
  }
}

// Waits for the work; a collective that does not finish within the group's
// timeout is an error.
void finish(Group* g, const c10::intrusive_ptr<c10d::Work>& work) {
  if (!work->wait(g->timeout)) {
    throw std::runtime_error("timed out waiting for the collective");
  }
}

}  // namespace

extern "C" {

// Joins the group: rank 0 hosts a TCPStore at master_addr:port, the others
// connect to it; then the Gloo process group binds to `iface` (mode 0: a
// network interface name; mode 1: a hostname or address; mode 2: ignored,
// the host's own name, falling back to loopback) and connects to every
// other rank. Returns nullptr and sets *err on failure.
void* forge_c10d_gloo_new(const char* master_addr, int port, int rank,
                          int world_size, long long timeout_ms,
                          const char* iface, int mode, char** err) {
  Group* group = nullptr;
  *err = guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = static_cast<std::size_t>(world_size);
    opts.waitWorkers = true;
    opts.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(master_addr, opts);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->threads = 1;
    options->devices.push_back(
        mode == 0   ? c10d::ProcessGroupGloo::createDeviceForInterface(iface)
        : mode == 1 ? c10d::ProcessGroupGloo::createDeviceForHostname(iface)
                    : c10d::ProcessGroupGloo::createDefaultDevice());
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank,
                                                          world_size, options);
    group = new Group{store, pg, timeout};
  });
  return group;
}

void forge_c10d_free(void* group) { delete static_cast<Group*>(group); }

void forge_c10d_free_string(char* s) { std::free(s); }

// In-place sum of `t` over all ranks.
char* forge_c10d_allreduce_sum(void* group, at::Tensor* t) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = g->timeout;
    finish(g, g->pg->allreduce(ts, opts));
  });
}

// In-place copy of `root`'s `t` to every rank.
char* forge_c10d_broadcast(void* group, at::Tensor* t, int root) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    finish(g, g->pg->broadcast(ts, opts));
  });
}

char* forge_c10d_barrier(void* group) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    finish(g, g->pg->barrier(opts));
  });
}

// `output` (n elements) receives this rank's n-element slice of the sum over
// ranks of `input` (world_size * n elements).
char* forge_c10d_reduce_scatter_sum(void* group, at::Tensor* output,
                                    at::Tensor* input) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::ReduceScatterOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = g->timeout;
    finish(g, g->pg->_reduce_scatter_base(*output, *input, opts));
  });
}

// `output` (world_size * n elements) receives every rank's n-element
// `input`, in rank order.
char* forge_c10d_all_gather(void* group, at::Tensor* output,
                            at::Tensor* input) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    finish(g, g->pg->_allgather_base(*output, *input, opts));
  });
}

// Store access for liveness checks: adds `delta` to the counter `key`, writing the new value to *out.
char* forge_c10d_store_add(void* group, const char* key, long long delta,
                           long long* out) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    *out = g->store->add(key, delta);
  });
}
}
