#include "veridl/train/report.hpp"

#include <fmt/core.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>

#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"
#include "veridl/util/text.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl::train {

using nlohmann::json;

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// ---- reading the run folder ---------------------------------------------------------------------------------

namespace {

// Run folder files are small; a file far larger than a run writes is not one.
constexpr uint64_t kMaxRunFile = uint64_t{1} << 30;

std::string read_text(const std::string& path, const std::string& what) {
  const std::vector<uint8_t> b = read_whole_file(path, what, kMaxRunFile);
  return std::string(b.begin(), b.end());
}

json parse_json_file(const std::string& path, const std::string& what) {
  const std::string text = read_text(path, what);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    const std::string m = e.what();
    throw Error(fmt::format("{} '{}' is not valid JSON ({}): a truncated or edited file?", what, path,
                            printable(m.substr(m.find(']') == std::string::npos ? 0 : m.find(']') + 2), 120)));
  }
}

// The field `key` of object `j` as a number; `where` names the file (and line) in the message.
double number(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(fmt::format("{}: no \"{}\"", where, key));
  if (!it->is_number()) throw Error(fmt::format("{}: \"{}\" is not a number ({})", where, key, printable(it->dump(), 40)));
  const double v = it->get<double>();
  if (!std::isfinite(v)) throw Error(fmt::format("{}: \"{}\" is not finite", where, key));
  return v;
}
size_t count(const json& j, const char* key, const std::string& where) {
  const double v = number(j, key, where);
  if (v < 0 || v != std::floor(v) || v > 1e15) throw Error(fmt::format("{}: \"{}\" is not a count ({})", where, key, v));
  return static_cast<size_t>(v);
}
std::optional<double> opt_number(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) return std::nullopt;
  return number(j, key, where);
}

void read_metrics(RunRecord& r) {
  const std::string path = r.dir + "/metrics.jsonl";
  const std::string text = read_text(path, "metrics");
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    ++line_no;
    const std::string where = fmt::format("{}:{}", path, line_no);
    if (end == std::string::npos)
      throw Error(fmt::format("{}: the last line has no newline: the file is truncated (the run was killed while "
                              "writing it?)", where));
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      throw Error(fmt::format("{}: not a JSON line ('{}'): a truncated or edited file?", where, printable(line, 60)));
    }
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
      throw Error(fmt::format("{}: not a metrics line (no \"type\")", where));
    const std::string type = j["type"];
    if (type == "step") {
      RunStep s{count(j, "epoch", where), count(j, "step", where), number(j, "loss", where), number(j, "lr", where)};
      // A resumed run repeats the steps after its checkpoint: its lines replace the earlier ones.
      while (!r.steps.empty() && r.steps.back().step >= s.step) r.steps.pop_back();
      r.steps.push_back(s);
    } else if (type == "epoch") {
      RunEpoch e;
      e.epoch = count(j, "epoch", where);
      e.step = count(j, "step", where);
      e.train_loss = number(j, "train_loss", where);
      e.train_accuracy = number(j, "train_accuracy", where);
      e.lr = number(j, "lr", where);
      e.images_per_second = number(j, "images_per_second", where);
      e.seconds = number(j, "seconds", where);
      e.val_loss = opt_number(j, "val_loss", where);
      e.val_accuracy = opt_number(j, "val_accuracy", where);
      e.val_top5 = opt_number(j, "val_top5", where);
      if (e.epoch == 0) throw Error(fmt::format("{}: epoch 0 (epochs count from 1)", where));
      while (!r.epochs.empty() && r.epochs.back().epoch >= e.epoch) r.epochs.pop_back();
      r.epochs.push_back(e);
    } else if (type != "test") {  // the test line repeats test.json, which the report reads
      throw Error(fmt::format("{}: unknown line type '{}'", where, printable(type, 40)));
    }
  }
  if (r.epochs.empty())
    throw Error(fmt::format("{}: no epoch line: the run did not finish an epoch, there is nothing to report", path));
}

RunTest read_test(const std::string& path) {
  const json j = parse_json_file(path, "test results");
  if (!j.is_object()) throw Error(fmt::format("{}: not a JSON object", path));
  RunTest t;
  t.correct = count(j, "correct", path);
  t.total = count(j, "total", path);
  t.top5_correct = count(j, "top5_correct", path);
  t.accuracy = number(j, "accuracy", path);
  t.top5 = number(j, "top5", path);
  t.loss = number(j, "loss", path);
  const auto pc = j.find("per_class_accuracy");
  const auto cf = j.find("confusion");
  if (pc == j.end() || !pc->is_array()) throw Error(fmt::format("{}: no \"per_class_accuracy\" list", path));
  if (cf == j.end() || !cf->is_array()) throw Error(fmt::format("{}: no \"confusion\" matrix", path));
  const size_t k = cf->size();
  if (k == 0 || k > 100000 || pc->size() != k)
    throw Error(fmt::format("{}: the confusion matrix has {} rows and per_class_accuracy {} entries", path, k, pc->size()));
  size_t sum = 0;
  for (size_t c = 0; c < k; ++c) {
    const json& row = (*cf)[c];
    if (!(*pc)[c].is_number()) throw Error(fmt::format("{}: per_class_accuracy[{}] is not a number", path, c));
    t.per_class.push_back((*pc)[c].get<double>());
    if (!row.is_array() || row.size() != k)
      throw Error(fmt::format("{}: confusion row {} is not a list of {} counts", path, c, k));
    std::vector<size_t> counts;
    for (const json& v : row) {
      if (!v.is_number_unsigned()) throw Error(fmt::format("{}: confusion row {} holds a value that is not a count", path, c));
      counts.push_back(v.get<size_t>());
      sum += counts.back();
    }
    t.confusion.push_back(std::move(counts));
  }
  if (sum != t.total)
    throw Error(fmt::format("{}: the confusion matrix counts {} examples, \"total\" says {}", path, sum, t.total));
  return t;
}

}  // namespace

RunRecord load_run(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    throw Error(fmt::format("run folder '{}' does not exist (veridl train writes one per run: --run-dir)", dir));
  if (!S_ISDIR(st.st_mode)) throw Error(fmt::format("run folder '{}' is not a directory", dir));
  RunRecord r;
  r.dir = dir;
  while (r.dir.size() > 1 && r.dir.back() == '/') r.dir.pop_back();
  read_metrics(r);
  const std::string spath = r.dir + "/summary.json";
  r.summary = parse_json_file(spath, "run summary");
  if (!r.summary.is_object() || !r.summary.contains("spec"))
    throw Error(fmt::format("{}: not a run summary (no \"spec\")", spath));
  const bool interrupted = r.summary.value("interrupted", false);
  const std::string tpath = r.dir + "/test.json";
  struct stat tst {};
  if (::stat(tpath.c_str(), &tst) == 0 || !interrupted) r.test = read_test(tpath);
  r.spec_text = read_text(r.dir + "/spec.json", "spec");
  r.spec = net::parse_netspec(r.spec_text, r.dir + "/spec.json");
  r.command = read_text(r.dir + "/command.txt", "command line");
  while (!r.command.empty() && (r.command.back() == '\n' || r.command.back() == '\r')) r.command.pop_back();
  return r;
}

// ---- contracts ------------------------------------------------------------------------------------------------

size_t ContractTable::verified() const {
  return static_cast<size_t>(std::count_if(rows.begin(), rows.end(), [](const ContractRow& c) { return c.pass; }));
}

ContractTable plan_contracts(const net::Plan& plan) {
  const auto& table = prims::table();
  std::vector<bool> used(table.size(), false);
  for (const auto& n : plan.nodes) used[n.op] = true;
  ContractTable t;
  const Registry& reg = builtin_contracts();
  auto add = [&](const std::string& name, const std::string& user) {
    for (auto& row : t.rows)
      if (row.name == name) {
        if (std::find(row.used_by.begin(), row.used_by.end(), user) == row.used_by.end()) row.used_by.push_back(user);
        return;
      }
    const Contract* c = reg.find(name);
    if (!c) throw std::logic_error("primitive table: " + user + " names an unregistered contract '" + name + "'");
    t.rows.push_back(ContractRow{c->name, c->statement, c->chapter, {user}, 0, 0, false, 0, ""});
  };
  for (size_t op = 0; op < table.size(); ++op)
    if (used[op] && table[op].contracts)
      for (const std::string& name : table[op].contracts()) add(name, table[op].name);
  bool accumulates = false;
  for (const auto& edges : plan.edges)
    for (auto e : edges) accumulates |= e == graph::EdgeKind::Accumulate;
  if (accumulates) add("fanout_has_vjp", "fan-out (accumulate edges)");
  return t;
}

void check_contracts(ContractTable& t, uint64_t seed, int trials) {
  const Registry& reg = builtin_contracts();
  RunOptions opt;
  opt.seed = seed;
  opt.trials = trials;
  t.seed = seed;
  t.trials = trials;
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char stamp[40];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", &utc);
  t.checked_at = stamp;
  t.seconds = 0;
  for (auto& row : t.rows) {
    const ContractResult r = run_contract(*reg.find(row.name), opt);
    row.pass = r.pass;
    row.configs = r.configs;
    row.trials = r.trials;
    row.seconds = r.seconds;
    t.seconds += r.seconds;
    for (const auto& cs : r.cases)
      if (!cs.check.pass) {
        row.failure = fmt::format("rejected at {} ({} tape): {}", cs.config, cs.tape, cs.check.failure);
        break;
      }
  }
}

// ---- charts ---------------------------------------------------------------------------------------------------

namespace {

struct Series {
  std::string key, label, color;
  std::vector<double> x, y;
  double width = 2;
  bool markers = false;
};

struct Chart {
  std::string id, title, xlabel, ylabel;
  std::vector<Series> series;
  bool y_from_zero = false;
  std::optional<double> y_max;  // a hard top (accuracy: 100)
  double x_lo = 0, x_hi = 0;    // x_lo == x_hi: from the data
  std::string frame = "#aab4be";  // the axes' colour
};

// 1, 2, 2.5 or 5 times a power of ten, about range / target.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

// A tick's label: v / divisor with as many decimals as the step needs (0.025 -> 3), then `suffix` ("k").
std::string tick_label(double v, double step, double divisor = 1, const char* suffix = "") {
  if (std::fabs(v) < 1e-9 * step) return "0";  // no "-0"
  v /= divisor;
  step /= divisor;
  int d = 0;
  while (d < 8 && std::fabs(step * std::pow(10.0, d) - std::round(step * std::pow(10.0, d))) > 1e-6 * step * std::pow(10.0, d)) ++d;
  return fmt::format("{:.{}f}{}", v, d, suffix);
}

// "×10⁻³" for e = -3.
std::string times_ten_to(int e) {
  static const char* sup[10] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
  std::string r = "×10";
  if (e < 0) r += "⁻";
  for (char c : std::to_string(std::abs(e))) r += sup[c - '0'];
  return r;
}

// Geometry of every chart (CSS pixels; the SVG is drawn at this size).
constexpr double kW = 520, kH = 290, kLeft = 64, kRight = 14, kTop = 40, kBottom = 42;

std::string svg_chart(const Chart& c) {
  double xlo = c.x_lo, xhi = c.x_hi, ylo = std::numeric_limits<double>::infinity(), yhi = -ylo;
  const bool x_from_data = xlo == xhi;
  if (x_from_data) {
    xlo = std::numeric_limits<double>::infinity();
    xhi = -xlo;
  }
  for (const auto& s : c.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (x_from_data) {
        xlo = std::min(xlo, s.x[i]);
        xhi = std::max(xhi, s.x[i]);
      }
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  if (!std::isfinite(ylo)) ylo = 0, yhi = 1;
  if (!std::isfinite(xlo)) xlo = 0, xhi = 1;
  if (xhi == xlo) xlo -= 0.5, xhi += 0.5;
  if (c.y_from_zero) ylo = std::min(ylo, 0.0);
  const double pad = yhi > ylo ? 0.06 * (yhi - ylo) : std::max(std::fabs(yhi) * 0.1, 1e-3);
  if (!(c.y_from_zero && ylo == 0)) ylo -= pad;
  yhi += pad;
  if (c.y_max) yhi = std::min(yhi, std::max(*c.y_max, ylo + pad));
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - xlo) / (xhi - xlo) * pw; };
  auto py = [&](double y) { return kTop + ph - (y - ylo) / (yhi - ylo) * ph; };

  std::string o = fmt::format(
      "<svg class=\"chart\" id=\"chart-{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" data-plot=\"{} {} {} {}\" data-xrange=\"{:.17g} {:.17g}\" data-yrange=\"{:.17g} {:.17g}\" "
      "role=\"img\" aria-label=\"{}\">\n",
      c.id, kW, kH, kW, kH, kLeft, kTop, pw, ph, xlo, xhi, ylo, yhi, html_escape(c.title));
  o += fmt::format("<text class=\"title\" x=\"{}\" y=\"16\">{}</text>\n", kLeft, html_escape(c.title));
  o += fmt::format("<rect class=\"area\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\n", kLeft, kTop, pw, ph);
  // Ticks and grid lines.
  const double ys = nice_step(yhi - ylo, 5), xs = nice_step(xhi - xlo, 8);
  // Large values in thousands ("12k"); small ones (a learning rate) in a power of ten named in the axis label.
  const double ymag = std::max(std::fabs(ylo), std::fabs(yhi));
  const bool y_thousands = ymag >= 12000;
  const int y_exp = ymag > 0 && ymag < 0.01 ? static_cast<int>(std::floor(std::log10(ymag))) : 0;
  const double y_div = y_thousands ? 1000 : std::pow(10.0, y_exp);
  const char* y_suffix = y_thousands ? "k" : "";
  for (double v = std::ceil(ylo / ys - 1e-9) * ys; v <= yhi + 1e-9 * ys; v += ys) {
    const double y = py(v);
    o += fmt::format("<line class=\"grid\" x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\"/>"
                     "<line class=\"tick\" data-axis=\"y\" data-value=\"{:.17g}\" x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\"/>"
                     "<text class=\"ty\" x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n",
                     kLeft, y, kLeft + pw, y, v, kLeft - 5, y, kLeft, y, kLeft - 8, y + 4, tick_label(v, ys, y_div, y_suffix));
  }
  for (double v = std::ceil(xlo / xs - 1e-9) * xs; v <= xhi + 1e-9 * xs; v += xs) {
    const double x = px(v);
    o += fmt::format("<line class=\"tick\" data-axis=\"x\" data-value=\"{:.17g}\" x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\"/>"
                     "<text class=\"tx\" x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n",
                     v, x, kTop + ph, x, kTop + ph + 5, x, kTop + ph + 18, tick_label(v, xs));
  }
  o += fmt::format("<text class=\"xl\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", kLeft + pw / 2, kH - 6, html_escape(c.xlabel));
  o += fmt::format("<text class=\"yl\" transform=\"translate(14 {:.1f}) rotate(-90)\">{}</text>\n", kTop + ph / 2,
                   html_escape(c.ylabel) + (y_exp ? " (" + times_ten_to(y_exp) + ")" : ""));
  // The curves, then the legend above the plot area.
  o += fmt::format("<g clip-path=\"url(#clip-{})\">\n", c.id);
  o += fmt::format("<clipPath id=\"clip-{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath>\n", c.id,
                   kLeft - 4, kTop - 4, pw + 8, ph + 8);
  for (const auto& s : c.series) {
    if (s.x.empty()) continue;
    std::string pts;
    for (size_t i = 0; i < s.x.size(); ++i) pts += fmt::format("{}{:.2f},{:.2f}", i ? " " : "", px(s.x[i]), py(s.y[i]));
    o += fmt::format("<polyline data-series=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" "
                     "stroke-linejoin=\"round\" points=\"{}\"/>\n",
                     s.key, s.color, s.width, pts);
    if (s.markers)
      for (size_t i = 0; i < s.x.size(); ++i)
        o += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3\" fill=\"{}\"/>", px(s.x[i]), py(s.y[i]), s.color);
    if (s.markers) o += "\n";
  }
  o += "</g>\n";
  // The axes: a box around the plot area, drawn over the curves with whole-pixel edges, in the chart's own grey
  // (the rendering test finds each chart's plot area in a screenshot by it).
  o += fmt::format("<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"{}\" "
                   "stroke-width=\"1\" shape-rendering=\"crispEdges\"/>\n",
                   kLeft - 0.5, kTop - 0.5, pw + 1, ph + 1, c.frame);
  double lx = kLeft;
  for (const auto& s : c.series) {
    o += fmt::format("<line x1=\"{0:.1f}\" y1=\"30\" x2=\"{1:.1f}\" y2=\"30\" stroke=\"{2}\" stroke-width=\"3\"/>"
                     "<text class=\"lg\" x=\"{3:.1f}\" y=\"34\">{4}</text>\n",
                     lx, lx + 16, s.color, lx + 20, html_escape(s.label));
    lx += 20 + 6.2 * static_cast<double>(s.label.size()) + 16;
  }
  o += "</svg>\n";
  return o;
}

// The series' colours: distinct across the page, so a screenshot tells the curves apart (tests/test_report.cpp).
constexpr const char* kTrainLoss = "#1f5fbf";
constexpr const char* kStepLoss = "#9cc3ef";
constexpr const char* kValLoss = "#e8590c";
constexpr const char* kTrainAcc = "#2b8a3e";
constexpr const char* kValAcc = "#c2255c";
constexpr const char* kValTop5 = "#f59f00";
constexpr const char* kLr = "#7048e8";
constexpr const char* kRate = "#0b7285";
// The axes of the loss, accuracy, lr and throughput charts: the same grey to the eye, told apart by one unit of blue.
constexpr const char* kFrames[4] = {"#aab4be", "#aab4bf", "#aab4c0", "#aab4c1"};

// At most this many points per per-step curve: longer runs plot the mean of each bucket of steps.
constexpr size_t kMaxStepPoints = 4000;

std::string fmt_num(double v, int prec = 4) { return fmt::format("{:.{}g}", v, prec); }
std::string fmt_pct(double v) { return fmt::format("{:.2f}%", v); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (auto d : shape) s += (s.empty() ? "" : " × ") + std::to_string(d);
  return s.empty() ? "scalar" : s;
}

std::string thousands(size_t n) {
  std::string d = std::to_string(n), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

const char* kCss = R"(
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"DejaVu Sans",sans-serif;margin:0;background:#f6f7f9;color:#1d2129;font-size:14px;line-height:20px}
main{max-width:1120px;margin:0 auto;padding:18px 22px 40px}
h1{font-size:22px;line-height:28px;margin:4px 0 2px}h2{font-size:17px;line-height:22px;margin:26px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
.sub{color:#5c6670;margin:0 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px;line-height:26px}.card span{color:#5c6670;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{background:#fff;border:1px solid #d8dde3;border-radius:6px}
.chart .title{font-weight:600;font-size:14px;fill:#1d2129}.chart .area{fill:#fff}
.chart .grid{stroke:#eceff2;stroke-width:1}.chart .tick{stroke:#5c6670;stroke-width:1}
.chart text{font-size:11px;fill:#39424c}.chart .ty{text-anchor:end}.chart .tx,.chart .xl{text-anchor:middle}
.chart .yl{text-anchor:middle}.chart .lg{font-size:12px}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #d8dde3;padding:3px 7px;text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td code{white-space:nowrap}td.wrap,td.wrap code{white-space:normal;overflow-wrap:break-word}
th{background:#eef1f4}td.l,th.l{text-align:left}
.conf td{width:34px;text-align:center;padding:3px 2px}.conf th{padding:3px 4px}
.bar{display:inline-block;height:9px;background:#1f5fbf;vertical-align:middle;margin-left:6px}
pre{background:#fff;border:1px solid #d8dde3;padding:8px;overflow:auto;max-height:360px;font-size:12px;margin:6px 0}
#command{white-space:pre-wrap;overflow-wrap:anywhere}
code{font-size:12px}.ok{color:#2b8a3e;font-weight:600}.bad{color:#c92a2a;font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.note{color:#5c6670;font-size:12px;max-width:1060px}
)";

}  // namespace

std::string render_report(const RunRecord& run, const net::Plan& plan, const ContractTable& contracts) {
  const json& s = run.summary;
  const std::string name = s.contains("spec") && s["spec"].is_string() ? s["spec"].get<std::string>() : run.spec.name;
  const size_t n_epochs = run.epochs.size();
  const double bpe = run.epochs.front().step > 0 && run.epochs.front().epoch > 0
                         ? static_cast<double>(run.epochs.front().step) / static_cast<double>(run.epochs.front().epoch)
                         : 1.0;  // batches per epoch, from the first epoch line
  const double last_epoch = static_cast<double>(run.epochs.back().epoch);

  // The per-step curves, bucketed when the run is long.
  const size_t bucket = std::max<size_t>(1, (run.steps.size() + kMaxStepPoints - 1) / kMaxStepPoints);
  Series step_loss{"step_loss", bucket > 1 ? fmt::format("step loss (mean of {})", bucket) : "step loss", kStepLoss, {}, {}, 1.2, false};
  Series step_lr{"step_lr", "lr per step", kLr, {}, {}, 2, false};
  for (size_t i = 0; i < run.steps.size(); i += bucket) {
    const size_t e = std::min(run.steps.size(), i + bucket);
    double l = 0, r = 0, x = 0;
    for (size_t k = i; k < e; ++k) {
      l += run.steps[k].loss;
      r += run.steps[k].lr;
      x += static_cast<double>(run.steps[k].step);
    }
    const double m = static_cast<double>(e - i);
    step_loss.x.push_back(x / m / bpe);
    step_loss.y.push_back(l / m);
    step_lr.x.push_back(x / m / bpe);
    step_lr.y.push_back(r / m);
  }
  const bool markers = n_epochs <= 60;
  Series train_loss{"train_loss", "train loss (epoch mean)", kTrainLoss, {}, {}, 2.5, markers};
  Series val_loss{"val_loss", "val loss", kValLoss, {}, {}, 2.5, markers};
  Series train_acc{"train_accuracy", "train accuracy", kTrainAcc, {}, {}, 2.5, markers};
  Series val_acc{"val_accuracy", "val accuracy", kValAcc, {}, {}, 2.5, markers};
  Series val_top5{"val_top5", "val top-5", kValTop5, {}, {}, 2, markers};
  Series rate{"images_per_second", "images/s (training steps)", kRate, {}, {}, 2.5, markers};
  Series epoch_lr{"epoch_lr", "lr at epoch end", kLr, {}, {}, 2, markers};
  for (const auto& e : run.epochs) {
    const double x = static_cast<double>(e.epoch);
    train_loss.x.push_back(x), train_loss.y.push_back(e.train_loss);
    train_acc.x.push_back(x), train_acc.y.push_back(e.train_accuracy);
    rate.x.push_back(x), rate.y.push_back(e.images_per_second);
    epoch_lr.x.push_back(x), epoch_lr.y.push_back(e.lr);
    if (e.val_loss) val_loss.x.push_back(x), val_loss.y.push_back(*e.val_loss);
    if (e.val_accuracy) val_acc.x.push_back(x), val_acc.y.push_back(*e.val_accuracy);
    if (e.val_top5) val_top5.x.push_back(x), val_top5.y.push_back(*e.val_top5);
  }
  const double x0 = run.steps.empty() ? 1 : 0;
  Chart loss{"loss", "Loss", "epoch", "cross-entropy", {}, true, std::nullopt, x0, last_epoch, kFrames[0]};
  if (!step_loss.x.empty()) loss.series.push_back(step_loss);
  loss.series.push_back(train_loss);
  if (!val_loss.x.empty()) loss.series.push_back(val_loss);
  Chart acc{"accuracy", "Accuracy", "epoch", "accuracy (%)", {train_acc}, false, 100.0, x0, last_epoch, kFrames[1]};
  if (!val_acc.x.empty()) acc.series.push_back(val_acc);
  if (!val_top5.x.empty()) acc.series.push_back(val_top5);
  Chart lr{"lr", "Learning rate", "epoch", "lr", {run.steps.empty() ? epoch_lr : step_lr}, true, std::nullopt, x0, last_epoch, kFrames[2]};
  Chart thr{"throughput", "Throughput", "epoch", "images / s", {rate}, true, std::nullopt, x0, last_epoch, kFrames[3]};

  std::string o;
  o.reserve(1 << 20);
  o += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  o += fmt::format("<title>{} — VeriDL run report</title>\n<style>{}</style></head>\n<body><main>\n",
                   html_escape(name), kCss);
  o += fmt::format("<h1>{}: run report</h1>\n<p class=\"sub\">run folder <code>{}</code> · data {} · {} epochs of {} "
                   "batches{} · written by <code>veridl report</code></p>\n",
                   html_escape(name), html_escape(run.dir), html_escape(s.value("data", std::string("?"))), n_epochs,
                   static_cast<size_t>(bpe), s.value("interrupted", false) ? " · <b>interrupted</b>" : "");

  // Headline figures.
  o += "<div class=\"cards\">\n";
  auto card = [&](const std::string& v, const std::string& what) {
    o += fmt::format("<div class=\"card\"><b>{}</b><span>{}</span></div>\n", v, what);
  };
  if (run.test) {
    card(fmt_pct(run.test->accuracy), fmt::format("test top-1 ({}/{})", run.test->correct, run.test->total));
    card(fmt_pct(run.test->top5), fmt::format("test top-5 ({}/{})", run.test->top5_correct, run.test->total));
  } else {
    card("—", "no test evaluation (interrupted run)");
  }
  if (!val_acc.y.empty()) {
    const auto best = std::max_element(val_acc.y.begin(), val_acc.y.end());
    card(fmt_pct(*best), fmt::format("best val accuracy (epoch {})", val_acc.x[static_cast<size_t>(best - val_acc.y.begin())]));
  }
  card(fmt_num(run.epochs.back().train_loss), "final train loss");
  if (s.contains("images_per_second") && s["images_per_second"].is_number())
    card(thousands(static_cast<size_t>(std::max(0.0, s["images_per_second"].get<double>()) + 0.5)), "images/s (training)");
  if (s.contains("train_seconds") && s["train_seconds"].is_number())
    card(fmt::format("{:.1f} s", s["train_seconds"].get<double>()), "training time");
  card(thousands(plan.n_params), "parameters");
  card(fmt::format("{}/{}", contracts.verified(), contracts.rows.size()), "contracts verified");
  o += "</div>\n";

  o += "<h2>Curves</h2>\n<div class=\"charts\">\n" + svg_chart(loss) + svg_chart(acc) + svg_chart(lr) + svg_chart(thr) +
       "</div>\n";
  o += fmt::format("<p class=\"note\">x: epochs (a step at its fraction of the epoch, {} steps per epoch); the epoch "
                   "points are at each epoch's end: the train loss and accuracy are the means over its batches, the "
                   "validation figures are measured after it. The training loss is against the run's targets (label-smoothed if "
                   "the recipe smooths them), the validation and test losses against the labels.</p>\n",
                   static_cast<size_t>(bpe));

  // The test set.
  o += "<h2>Test set</h2>\n";
  if (run.test) {
    const RunTest& t = *run.test;
    const size_t k = t.confusion.size();
    o += fmt::format("<p>top-1 <b>{}</b> ({}/{}), top-5 <b>{}</b> ({}/{}), mean loss {} — the whole test set, scored "
                     "once after the last epoch. Rows: the true class; columns: the prediction; the colour is the "
                     "share of the row.</p>\n",
                     fmt_pct(t.accuracy), t.correct, t.total, fmt_pct(t.top5), t.top5_correct, t.total, fmt_num(t.loss, 5));
    o += "<div class=\"row\"><table class=\"conf\" id=\"confusion\"><tr><th>true \\ pred</th>";
    for (size_t c = 0; c < k; ++c) o += fmt::format("<th>{}</th>", c);
    o += "<th>n</th><th class=\"l\">accuracy</th></tr>\n";
    for (size_t r = 0; r < k; ++r) {
      size_t n = 0;
      for (size_t v : t.confusion[r]) n += v;
      o += fmt::format("<tr><th>{}</th>", r);
      for (size_t c = 0; c < k; ++c) {
        const size_t v = t.confusion[r][c];
        const double share = n ? static_cast<double>(v) / static_cast<double>(n) : 0.0;
        // Diagonal: blue by share; off the diagonal: red, amplified so that a few confusions show.
        const double a = r == c ? share : std::min(1.0, 4 * share);
        const std::string bg = v == 0 ? "#fff"
                               : r == c ? fmt::format("rgba(31,95,191,{:.3f})", 0.08 + 0.92 * a)
                                        : fmt::format("rgba(201,42,42,{:.3f})", 0.08 + 0.92 * a);
        o += fmt::format("<td style=\"background:{};color:{}\" title=\"true {} predicted {}: {}\">{}</td>", bg,
                         a > 0.55 ? "#fff" : "#1d2129", r, c, v, v);
      }
      const double pc = t.per_class[r];
      o += fmt::format("<td>{}</td><td class=\"l\">{}<span class=\"bar\" style=\"width:{:.0f}px\"></span></td></tr>\n", n,
                       pc < 0 ? "—" : fmt::format("{:.1f}%", pc), pc < 0 ? 0.0 : pc);
    }
    o += "</table></div>\n";
  } else {
    o += "<p>No test evaluation: the run was interrupted before its end.</p>\n";
  }

  // Epochs and throughput.
  o += "<h2>Epochs and throughput</h2>\n<table id=\"epochs\"><tr><th>epoch</th><th>step</th><th>train loss</th>"
       "<th>train acc.</th><th>val loss</th><th>val acc.</th><th>val top-5</th><th>lr</th><th>images/s</th>"
       "<th>seconds</th></tr>\n";
  auto opt = [](const std::optional<double>& v, bool pct) { return v ? (pct ? fmt_pct(*v) : fmt_num(*v, 5)) : "—"; };
  for (const auto& e : run.epochs)
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td>{:.0f}</td><td>{:.2f}</td></tr>\n",
                     e.epoch, e.step, fmt_num(e.train_loss, 5), fmt_pct(e.train_accuracy), opt(e.val_loss, false),
                     opt(e.val_accuracy, true), opt(e.val_top5, true), fmt_num(e.lr, 4), e.images_per_second, e.seconds);
  o += "</table>\n<p class=\"note\">images/s: training steps only; seconds: the epoch's wall time, evaluation "
       "included.</p>\n";

  // The command and the summary.
  o += fmt::format("<h2>Command</h2>\n<pre id=\"command\">{}</pre>\n", html_escape(run.command));
  // summary.json's single values (its per-epoch and per-step lists are the curves above), in three columns.
  std::vector<std::string> rows;
  for (const auto& [key, v] : s.items()) {
    if (v.is_array() || v.is_object()) continue;
    const std::string text = v.is_string() ? v.get<std::string>() : v.is_number_float() ? fmt_num(v.get<double>(), 6) : v.dump();
    rows.push_back(fmt::format("<tr><th class=\"l\">{}</th><td class=\"l\">{}</td></tr>\n", html_escape(key), html_escape(text)));
  }
  o += "<h2>Summary</h2>\n<p class=\"note\">summary.json (lists omitted).</p><div class=\"row\" id=\"summary\">";
  const size_t per = (rows.size() + 2) / 3;
  for (size_t i = 0; i < rows.size(); i += per) {
    o += "<table>\n";
    for (size_t k = i; k < std::min(rows.size(), i + per); ++k) o += rows[k];
    o += "</table>\n";
  }
  o += "</div>\n";

  // The network.
  const auto& table = prims::table();
  o += fmt::format("<h2>Network: {} ({} parameters)</h2>\n<div class=\"row\"><div>\n<table id=\"layers\"><tr>"
                   "<th class=\"l\">node</th><th class=\"l\">primitive</th><th class=\"l\">output (per image)</th>"
                   "<th>params</th></tr>\n",
                   html_escape(run.spec.name), thousands(plan.n_params));
  for (size_t k = 0; k < plan.nodes.size(); ++k) {
    const auto& n = plan.nodes[k];
    size_t p = 0;
    for (size_t t : n.params) p += plan.params[t].size;
    o += fmt::format("<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>\n",
                     html_escape(n.name), html_escape(table[n.op].name),
                     static_cast<long>(k) == plan.loss_node ? "loss" : html_escape(plan.values[n.output].shape.str()),
                     p ? thousands(p) : "");
  }
  o += "</table>\n</div><div>\n<table id=\"params\"><tr><th class=\"l\">parameter tensor</th><th class=\"l\">shape</th>"
       "<th>count</th></tr>\n";
  for (const auto& t : plan.params)
    o += fmt::format("<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td>{}</td></tr>\n", html_escape(t.name),
                     shape_text(t.shape), thousands(t.size));
  o += fmt::format("<tr><th class=\"l\">total</th><th></th><th>{}</th></tr>\n</table>\n</div></div>\n", thousands(plan.n_params));
  o += fmt::format("<p>spec.json (as trained):</p>\n<pre id=\"spec\">{}</pre>\n", html_escape(run.spec_text));

  // The contracts.
  std::string prim_names;
  for (const auto& row : contracts.rows)
    for (const auto& u : row.used_by)
      if (prim_names.find(u) == std::string::npos) prim_names += (prim_names.empty() ? "" : ", ") + u;
  o += fmt::format("<h2>Contracts of the primitives it uses</h2>\n<p>Checked <b>{}</b> by <code>veridl report</code>, "
                   "with the checker of <code>veridl verify</code> (this build): the closed-form backward against the "
                   "derivative of the forward, exactly over the prime fields F61 and F62, adjoint identity at random "
                   "points, seed {}, {} trials per configuration and tape. <b class=\"{}\">{}/{} verified</b> in "
                   "{:.2f} s. Primitives: {}. The whole network at its real shapes: <code>veridl verify --spec "
                   "RUN_DIR/spec.json</code>.</p>\n",
                   contracts.checked_at, contracts.seed, contracts.trials,
                   contracts.verified() == contracts.rows.size() ? "ok" : "bad", contracts.verified(),
                   contracts.rows.size(), contracts.seconds, html_escape(prim_names));
  o += "<table id=\"contracts\"><tr><th class=\"l\">contract</th><th>ch.</th><th class=\"l\">used by</th>"
       "<th class=\"l\">statement</th><th>configs</th><th>trials</th><th class=\"l\">result</th><th>time</th></tr>\n";
  for (const auto& row : contracts.rows) {
    std::string users;
    for (const auto& u : row.used_by) users += (users.empty() ? "" : ", ") + u;
    o += fmt::format("<tr><td class=\"l\"><code>{}</code></td><td>{}</td><td class=\"l\">{}</td><td class=\"l wrap\"><code>{}"
                     "</code></td><td>{}</td><td>{}</td><td class=\"l {}\">{}</td><td>{:.2f} s</td></tr>\n",
                     html_escape(row.name), row.chapter, html_escape(users), html_escape(row.statement), row.configs,
                     row.trials, row.pass ? "ok" : "wrap bad",
                     row.pass ? std::string("verified") : "REJECTED: " + html_escape(row.failure), row.seconds);
  }
  o += "</table>\n</main></body></html>\n";
  return o;
}

}  // namespace veridl::train
