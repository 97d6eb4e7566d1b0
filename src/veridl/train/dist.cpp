// Data-parallel training over MPI: see dist.hpp. The only file that includes <mpi.h> (when VERIDL_MPI is on).
#include "veridl/train/dist.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "veridl/util/error.hpp"

#ifndef VERIDL_MPI
#define VERIDL_MPI 0
#endif
#if VERIDL_MPI
#include <mpi.h>
#include <sched.h>

#include <vector>
#endif

namespace veridl::dist {

bool built_with_mpi() { return VERIDL_MPI != 0; }

int launched_size() {
  if (const char* s = std::getenv("OMPI_COMM_WORLD_SIZE")) {
    const int n = std::atoi(s);
    return n > 0 ? n : 0;
  }
  if (std::getenv("PMIX_RANK") || std::getenv("PMI_RANK")) return -1;  // launched by a PMI(x) runtime, size unknown here
  return 0;
}

uint64_t hash_bytes(const void* p, size_t n, uint64_t h) {
  const auto* b = static_cast<const unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  h ^= n;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

void check_same(const Group& g, const std::vector<std::pair<std::string, uint64_t>>& fingerprints) {
  std::vector<uint64_t> mine;
  for (const auto& f : fingerprints) mine.push_back(f.second);
  mine.push_back(fingerprints.size());
  const std::vector<uint64_t> all = g.allgather(mine.data(), mine.size());
  const size_t n = mine.size();
  for (int r = 1; r < g.size(); ++r)
    if (all[size_t(r) * n + n - 1] != fingerprints.size())
      throw Error(fmt::format("rank {} runs a different veridl (its start-up check lists {} items, rank 0's {})", r,
                              all[size_t(r) * n + n - 1], fingerprints.size()));
  for (size_t k = 0; k < fingerprints.size(); ++k) {
    std::string differ;
    for (int r = 1; r < g.size(); ++r)
      if (all[size_t(r) * n + k] != all[k]) differ += fmt::format("{}{}", differ.empty() ? "" : ", ", r);
    if (!differ.empty())
      throw Error(fmt::format("{} differs between ranks: rank {}'s is not rank 0's (every rank must run the same "
                              "command on the same files; docs/distributed.md)",
                              fingerprints[k].first, differ));
  }
}

Shard shard_of(size_t batch, int ranks, int rank) {
  const size_t R = static_cast<size_t>(ranks), r = static_cast<size_t>(rank);
  const size_t base = batch / R, extra = batch % R;
  return {r * base + std::min(r, extra), base + (r < extra ? 1 : 0)};
}

GradReducer::GradReducer(const net::Plan& plan, Group& g, float* grads, size_t bucket_bytes) : g_(g), grads_(grads) {
  // Parameters in reverse node order, cut into buckets of at least bucket_bytes (the last one may be smaller).
  const size_t limit = std::max<size_t>(bucket_bytes / sizeof(float), 1);
  Bucket cur;
  bool open = false;
  for (size_t k = plan.nodes.size(); k-- > 0;) {
    const graph::Node& node = plan.nodes[k];
    if (node.params.empty()) continue;
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t t : node.params) {
      lo = std::min(lo, plan.params[t].offset);
      hi = std::max(hi, plan.params[t].offset + plan.params[t].size);
    }
    if (!open) {
      cur = {k, lo, hi};
      open = true;
    } else {
      if (hi != cur.begin) throw Error("gradient buckets: the parameters are not laid out in node order");
      cur.begin = lo;
      cur.first_node = k;
    }
    if (cur.end - cur.begin >= limit) {
      buckets_.push_back(cur);
      open = false;
    }
  }
  if (open) buckets_.push_back(cur);
  for (const Bucket& b : buckets_) floats_ += b.end - b.begin;
}

void GradReducer::begin_step() { next_ = 0; }

void GradReducer::node_done(size_t node) {
  while (next_ < buckets_.size() && buckets_[next_].first_node >= node) {
    const Bucket& b = buckets_[next_++];
    g_.start(grads_ + b.begin, b.end - b.begin);
  }
  g_.progress();
}

void GradReducer::wait() {
  while (next_ < buckets_.size()) {
    const Bucket& b = buckets_[next_++];
    g_.start(grads_ + b.begin, b.end - b.begin);
  }
  g_.finish();
}

#if VERIDL_MPI

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(fmt::format("MPI {} failed: {}", what, std::string(msg, static_cast<size_t>(len))));
}

// One posted float sum: a reduce-scatter as an all-to-all (rank j receives every rank's j-th chunk and adds them in
// rank order), then an all-gather of the summed chunks back into x. Both non-blocking.
struct FloatSum {
  float* x = nullptr;
  size_t n = 0;
  int phase = 0;  // 1: the all-to-all is in flight; 2: the all-gather; 0: done
  MPI_Request req = MPI_REQUEST_NULL;
  std::vector<int> counts, displs, rcounts, rdispls;
  std::vector<float> parts;  // size() x my chunk
};

class MpiGroup final : public Group {
 public:
  MpiGroup() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    // Collectives must be started in the same order on every rank of a communicator. The gradient sums start their
    // all-to-all in bucket order, but their all-gathers as the all-to-alls complete: each phase has a communicator of
    // its own, on which every rank starts the buckets in order (progress() posts the all-gathers in bucket order).
    check(MPI_Comm_dup(MPI_COMM_WORLD, &scatter_), "communicator duplication");
    check(MPI_Comm_dup(MPI_COMM_WORLD, &gather_), "communicator duplication");
    // The ranks on this machine, and among them those bound to this rank's CPU set.
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
          "the split of the ranks by machine");
    int on_node = 1;
    MPI_Comm_size(node, &on_node);
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0) CPU_ZERO(&mine);
    std::vector<cpu_set_t> all(static_cast<size_t>(on_node));
    check(MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE, node),
          "the all-gather of the ranks' CPU sets");
    MPI_Comm_free(&node);
    core_sharers_ = static_cast<int>(
        std::count_if(all.begin(), all.end(), [&](const cpu_set_t& c) { return CPU_EQUAL(&c, &mine); }));
  }
  ~MpiGroup() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Comm_free(&scatter_);
    MPI_Comm_free(&gather_);
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int core_sharers() const override { return core_sharers_; }

  void sum(double* x, size_t n) const override {
    if (size_ == 1 || n == 0) return;
    std::vector<double> all(n * size_t(size_));
    check(MPI_Allgather(x, int(n), MPI_DOUBLE, all.data(), int(n), MPI_DOUBLE, MPI_COMM_WORLD), "all-gather");
    for (size_t i = 0; i < n; ++i) {
      double s = all[i];
      for (size_t r = 1; r < size_t(size_); ++r) s += all[r * n + i];
      x[i] = s;
    }
  }
  std::vector<uint64_t> allgather(const uint64_t* x, size_t n) const override {
    std::vector<uint64_t> all(n * size_t(size_));
    check(MPI_Allgather(x, int(n), MPI_UINT64_T, all.data(), int(n), MPI_UINT64_T, MPI_COMM_WORLD), "all-gather");
    return all;
  }
  std::string broadcast(const std::string& s) const override {
    uint64_t len = s.size();
    check(MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "broadcast");
    std::string out = rank_ == 0 ? s : std::string(len, '\0');
    if (len) check(MPI_Bcast(out.data(), int(len), MPI_CHAR, 0, MPI_COMM_WORLD), "broadcast");
    return out;
  }
  void broadcast(float* x, size_t n) const override {
    if (n) check(MPI_Bcast(x, int(n), MPI_FLOAT, 0, MPI_COMM_WORLD), "broadcast");
  }
  void barrier() const override { check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }
  [[noreturn]] void abort(int code) const override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

  size_t start(float* x, size_t n) override {
    if (active_ == ops_.size()) ops_.emplace_back();
    FloatSum& op = ops_[active_];
    op.x = x;
    op.n = n;
    op.phase = 0;
    if (size_ > 1 && n > 0) {
      const size_t R = size_t(size_);
      op.counts.resize(R);
      op.displs.resize(R);
      for (size_t j = 0; j < R; ++j) {
        const size_t b = j * n / R, e = (j + 1) * n / R;
        op.displs[j] = int(b);
        op.counts[j] = int(e - b);
      }
      const size_t mine = size_t(op.counts[size_t(rank_)]);
      op.rcounts.assign(R, int(mine));
      op.rdispls.resize(R);
      for (size_t j = 0; j < R; ++j) op.rdispls[j] = int(j * mine);
      if (op.parts.size() < R * mine) op.parts.resize(R * mine);
      check(MPI_Ialltoallv(x, op.counts.data(), op.displs.data(), MPI_FLOAT, op.parts.data(), op.rcounts.data(),
                           op.rdispls.data(), MPI_FLOAT, scatter_, &op.req),
            "all-to-all (gradient reduce-scatter)");
      op.phase = 1;
    }
    return active_++;
  }
  void progress() override {
    bool in_order = true;  // all-gathers are posted in bucket order: not past a bucket still in its all-to-all
    for (size_t i = 0; i < active_; ++i) {
      FloatSum& op = ops_[i];
      if (op.phase == 0 || (op.phase == 1 && !in_order)) continue;
      int done = 0;
      check(MPI_Test(&op.req, &done, MPI_STATUS_IGNORE), "test");
      if (done) advance(op);
      else if (op.phase == 1) in_order = false;
    }
  }
  void finish() override {
    for (size_t i = 0; i < active_; ++i) {
      FloatSum& op = ops_[i];
      while (op.phase != 0) {
        check(MPI_Wait(&op.req, MPI_STATUS_IGNORE), "wait (gradient all-reduce)");
        advance(op);
      }
    }
    active_ = 0;
  }

 private:
  int rank_ = 0, size_ = 1, core_sharers_ = 1;
  MPI_Comm scatter_ = MPI_COMM_NULL, gather_ = MPI_COMM_NULL;
  std::vector<FloatSum> ops_;
  size_t active_ = 0;

  // The request of `op`'s current phase has completed.
  void advance(FloatSum& op) {
    if (op.phase == 1) {
      // Every rank's part of my chunk has arrived: add them in rank order, into my chunk of x, and share it.
      const size_t R = size_t(size_), mine = size_t(op.counts[size_t(rank_)]);
      float* out = op.x + op.displs[size_t(rank_)];
      for (size_t i = 0; i < mine; ++i) {
        float s = op.parts[i];
        for (size_t r = 1; r < R; ++r) s += op.parts[r * mine + i];
        out[i] = s;
      }
      check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, op.x, op.counts.data(), op.displs.data(), MPI_FLOAT,
                            gather_, &op.req),
            "all-gather (gradient)");
      op.phase = 2;
    } else {
      op.phase = 0;
    }
  }
};

}  // namespace

std::unique_ptr<Group> join() {
  if (launched_size() == 0) return nullptr;
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  return std::make_unique<MpiGroup>();
}

#else  // built without MPI

std::unique_ptr<Group> join() {
  const int n = launched_size();
  if (n == 0 || n == 1) return nullptr;
  throw Error(fmt::format("this veridl was built without MPI (CMake option VERIDL_MPI off, or no MPI found) but runs "
                          "as one of {} ranks under mpirun: each would train alone. Rebuild with MPI "
                          "(libopenmpi-dev; docs/distributed.md)",
                          n > 0 ? std::to_string(n) : std::string("several")));
}

#endif

}  // namespace veridl::dist
