#include "veridl/net/plan.hpp"

#include <fmt/core.h>

#include "veridl/util/error.hpp"

namespace veridl::net {

Plan compile(const NetSpec& spec, size_t batch, double label_smoothing) {
  validate(spec, spec.name);
  if (batch == 0) throw Error("batch size must be positive");
  Plan p;
  p.spec = spec;
  p.batch = batch;
  p.label_smoothing = label_smoothing;
  p.num_classes = spec.num_classes();
  p.buf_width.push_back(spec.input_size());
  size_t cur = 0;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const Layer& l = spec.layers[i];
    Step s{l.kind, i, cur, cur, p.buf_width[cur], p.buf_width[cur], 0, 0};
    switch (l.kind) {
      case LayerKind::Flatten:
        break;  // a reshape of a C-order buffer: the same buffer, no copy
      case LayerKind::Dense: {
        p.buf_width.push_back(l.fan_out);
        s.out_buf = p.buf_width.size() - 1;
        s.width_out = l.fan_out;
        s.w = p.params.size();
        p.params.push_back({fmt::format("layers.{}.weight", i), {int64_t(l.fan_in), int64_t(l.fan_out)}, p.n_params,
                            l.fan_in * l.fan_out, l.fan_in});
        p.n_params += l.fan_in * l.fan_out;
        s.b = p.params.size();
        p.params.push_back({fmt::format("layers.{}.bias", i), {int64_t(l.fan_out)}, p.n_params, l.fan_out, l.fan_in});
        p.n_params += l.fan_out;
        break;
      }
    }
    cur = s.out_buf;
    p.steps.push_back(s);
  }
  return p;
}

}  // namespace veridl::net
