#include "veridl/util/plumbing_fault.hpp"

#include <atomic>

namespace veridl {

namespace {
std::atomic<PlumbingFault> g_fault{PlumbingFault::None};
}  // namespace

PlumbingFault plumbing_fault() { return g_fault.load(std::memory_order_relaxed); }

ScopedPlumbingFault::ScopedPlumbingFault(PlumbingFault f) : previous_(g_fault.exchange(f)) {}
ScopedPlumbingFault::~ScopedPlumbingFault() { g_fault.store(previous_); }

}  // namespace veridl
