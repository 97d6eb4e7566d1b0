// Data-parallel training over MPI (docs/distributed.md): the small interface the trainer and the CLI use. The MPI
// code itself is in dist.cpp (built when the CMake option VERIDL_MPI is on); nothing else includes <mpi.h>.
//
//   join()          under mpirun (Open MPI's OMPI_COMM_WORLD_SIZE, or PMIx's PMIX_RANK, in the environment):
//                   MPI_Init_thread and the world group; otherwise nullptr and no MPI call at all, so a plain
//                   `veridl train` behaves exactly as before. A veridl built without MPI refuses to run as one of
//                   several ranks (each would train alone).
//   Group           rank, size, and the few collectives the trainer needs. Every floating-point sum over ranks is
//                   computed in rank order (0, 1, ..., N-1) whatever the MPI library's algorithm: an N-rank run is
//                   bit-reproducible.
//   GradReducer     the parameter gradients in buckets, all-reduced (non-blocking) as the backward produces them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "veridl/graph/ir.hpp"
#include "veridl/net/plan.hpp"

namespace veridl::dist {

// Was this veridl built with MPI (VERIDL_MPI)?
bool built_with_mpi();

// The rank count mpirun announced in the environment (OMPI_COMM_WORLD_SIZE / PMIX), 0 when not launched by it.
int launched_size();

class Group : public graph::Collective {
 public:
  ~Group() override = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The ranks (this one included) whose threads run on this rank's cores: those on the same machine (MPI's
  // shared-memory split of the world, for any MPI and launcher) with the same CPU affinity. Unbound ranks share all
  // the machine's cores; Open MPI's default binds each of up to 2 ranks to a core of its own (then 1).
  virtual int core_sharers() const = 0;
  // In place: x[i] = the sum over ranks of x[i], added in rank order (the same bits on every rank).
  virtual void sum(double* x, size_t n) const override = 0;
  size_t parties() const override { return static_cast<size_t>(size()); }
  // Every rank's n values, rank-major (size() * n).
  virtual std::vector<uint64_t> allgather(const uint64_t* x, size_t n) const = 0;
  // Rank 0's string on every rank.
  virtual std::string broadcast(const std::string& s) const = 0;
  // Rank 0's floats on every rank (in place).
  virtual void broadcast(float* x, size_t n) const = 0;
  virtual void barrier() const = 0;
  // Ends the whole job now (MPI_Abort): after a rank's error, so that the others do not wait for it forever.
  [[noreturn]] virtual void abort(int code) const = 0;

  // Non-blocking, deterministic sum of float buffers (the gradient buckets): start() posts the exchange of `x`
  // (n floats; x is read and then overwritten with the sum over ranks, added in rank order), progress() advances
  // every posted sum without blocking, finish() blocks until all are done. Handles are indices from start().
  virtual size_t start(float* x, size_t n) = 0;
  virtual void progress() = 0;
  virtual void finish() = 0;
};

// The world group when launched by mpirun (MPI initialised here, finalised at exit), else nullptr.
std::unique_ptr<Group> join();

// The gradient all-reduce of a training step, in buckets of about `bucket_bytes`: parameters are grouped in reverse
// node order (the order the backward finishes them), each bucket a contiguous range of the flat gradient array.
// node_done(k) is the executor's backward hook: once node k's backward has run, every bucket whose nodes are all
// done is posted, and the posted ones progress. wait() posts any left and blocks until all are summed.
class GradReducer {
 public:
  GradReducer(const net::Plan& plan, Group& g, float* grads, size_t bucket_bytes);
  void begin_step();
  void node_done(size_t node);
  void wait();
  size_t buckets() const { return buckets_.size(); }
  size_t floats() const { return floats_; }

 private:
  struct Bucket {
    size_t first_node = 0;  // the lowest node index whose parameters it holds: ready once that node's backward ran
    size_t begin = 0, end = 0;
  };
  Group& g_;
  float* grads_;
  std::vector<Bucket> buckets_;  // in posting order (reverse node order)
  size_t next_ = 0;
  size_t floats_ = 0;
};

// A 64-bit hash of bytes (FNV-1a over 8-byte words, then a final mix), for the start-up consistency check.
uint64_t hash_bytes(const void* p, size_t n, uint64_t h = 0xcbf29ce484222325ull);

// The start-up check: every rank passes the same list of named fingerprints; a fingerprint that differs from rank
// 0's on any rank throws, on every rank, "<what> differs between ranks: rank r's is not rank 0's (...)". Call before
// any work.
void check_same(const Group& g, const std::vector<std::pair<std::string, uint64_t>>& fingerprints);

// How the global batch of B examples is split over N ranks: rank r takes examples [first(r), first(r) + count(r)) of
// every batch; the first B mod N ranks one more than the others.
struct Shard {
  size_t first = 0, count = 0;
};
Shard shard_of(size_t batch, int ranks, int rank);

}  // namespace veridl::dist
