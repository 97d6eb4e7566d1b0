// Deliberate plumbing faults between a run's recipe and its training step (issue 20): each re-injects, at its
// one code point, a bug that the contract checks cannot see because both sides of every contract are built from
// the same plan and config. They exist for the tests that prove the recipe, schedule and plan checks bite
// (tests/test_plan_pads.cpp, tests/test_plumbing.cpp; docs/verification.md, "What the contracts cannot see").
// Off by default;
// the command line never sets one. Only tests do, through ScopedPlumbingFault (the IREE trainer's test,
// tests/iree_train.py, through veridl._core._set_plumbing_fault).
#pragma once

namespace veridl {

enum class PlumbingFault {
  None,
  PadStyleSwapped,            // net::lower(): the spec's padStyle mapped the wrong way round
  LrAtZeroBasedStep,          // train::train(): the schedule evaluated at the 0-based step (lr 0 on a first warmup step)
  PlanWithoutLabelSmoothing,  // train::train(): the training plan compiled with label smoothing 0, whatever the run's
  RecipeDropsWeightDecay,     // train::optim_config(): the recipe's weight decay not copied into the optimizer
  ExternalSkipsRunningUpdate, // train::ExternalStep: the BatchNorm running statistics not updated from the device's step
  ExternalStaleLr,            // train::ExternalStep: the device given the previous step's learning rate
};

// The fault in force (PlumbingFault::None unless a test set one).
PlumbingFault plumbing_fault();

// Sets a fault for the scope's lifetime, then restores the previous one. Tests only.
class ScopedPlumbingFault {
 public:
  explicit ScopedPlumbingFault(PlumbingFault f);
  ~ScopedPlumbingFault();
  ScopedPlumbingFault(const ScopedPlumbingFault&) = delete;
  ScopedPlumbingFault& operator=(const ScopedPlumbingFault&) = delete;

 private:
  PlumbingFault previous_;
};

}  // namespace veridl
