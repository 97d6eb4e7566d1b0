#include "veridl/net/plan.hpp"

#include <fmt/core.h>

#include "veridl/util/error.hpp"

namespace veridl::net {

size_t Plan::bn_layers() const {
  size_t n = 0;
  for (const auto& s : steps) n += s.kind == StepKind::BatchNorm;
  return n;
}

Plan compile(const NetSpec& spec, size_t batch, double label_smoothing) {
  validate(spec, spec.name);
  if (batch == 0) throw Error("batch size must be positive");
  const std::vector<LayerShape> shapes = infer_shapes(spec, spec.name);
  Plan p;
  p.spec = spec;
  p.batch = batch;
  p.label_smoothing = label_smoothing;
  p.num_classes = spec.num_classes();
  p.buf_width.push_back(spec.input_size());
  const ops::PadStyle style = spec.pad_style == PadStyle::XlaSame ? ops::PadStyle::XlaSame : ops::PadStyle::Symmetric;
  size_t cur = 0;
  LayerShape in{spec.channels, spec.imageH, spec.imageW, true};
  auto add_param = [&](std::string name, std::vector<int64_t> shape, size_t fan_in, ParamTensor::Init init) {
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    p.params.push_back({std::move(name), std::move(shape), p.n_params, n, fan_in, init});
    p.n_params += n;
    return p.params.size() - 1;
  };
  auto new_buf = [&](size_t width) {
    p.buf_width.push_back(width);
    return p.buf_width.size() - 1;
  };
  auto push = [&](Step s) {
    cur = s.out_buf;
    p.steps.push_back(s);
  };
  auto relu = [&](size_t layer, size_t width) {
    Step s;
    s.kind = StepKind::Relu;
    s.layer = layer;
    s.in_buf = cur;
    s.width_in = s.width_out = width;
    s.out_buf = new_buf(width);
    s.aux = p.n_aux++;
    push(s);
  };
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const Layer& l = spec.layers[i];
    const LayerShape out = shapes[i];
    const std::string pre = fmt::format("layers.{}.", i);
    Step s;
    s.layer = i;
    s.in_buf = cur;
    s.width_in = in.size();
    s.width_out = out.size();
    switch (l.kind) {
      case LayerKind::Flatten:
        s.kind = StepKind::Flatten;  // a reshape of a C-order buffer: the same buffer, no copy
        s.out_buf = cur;
        push(s);
        break;
      case LayerKind::Dense:
        s.kind = StepKind::Dense;
        s.w = add_param(pre + "weight", {int64_t(l.fan_in), int64_t(l.fan_out)}, l.fan_in, ParamTensor::Init::He);
        s.b = add_param(pre + "bias", {int64_t(l.fan_out)}, 0, ParamTensor::Init::Zero);
        s.has_bias = true;
        s.out_buf = new_buf(out.size());
        push(s);
        if (l.act == Activation::Relu) relu(i, out.size());
        break;
      case LayerKind::Conv2d:
      case LayerKind::ConvBn: {
        const bool bn = l.kind == LayerKind::ConvBn;
        s.kind = StepKind::Conv;
        s.conv = ops::conv2d_shape(batch, in.C, in.H, in.W, l.fan_out, l.k, l.stride,
                                   l.same ? ops::Padding::Same : ops::Padding::Valid, style, !bn);
        s.w = add_param(pre + "weight", {int64_t(l.fan_out), int64_t(l.fan_in), int64_t(l.k), int64_t(l.k)},
                        l.fan_in * l.k * l.k, ParamTensor::Init::He);
        s.has_bias = !bn;
        if (!bn) s.b = add_param(pre + "bias", {int64_t(l.fan_out)}, 0, ParamTensor::Init::Zero);
        s.out_buf = new_buf(out.size());
        push(s);
        if (bn) {
          Step b;
          b.kind = StepKind::BatchNorm;
          b.layer = i;
          b.in_buf = cur;
          b.width_in = b.width_out = out.size();
          b.bn = {batch, out.C, out.H, out.W};
          b.w = add_param(pre + "bn.gamma", {int64_t(out.C)}, 0, ParamTensor::Init::One);
          b.b = add_param(pre + "bn.beta", {int64_t(out.C)}, 0, ParamTensor::Init::Zero);
          b.out_buf = new_buf(out.size());
          b.aux = p.n_aux++;
          push(b);
        }
        if (bn || l.act == Activation::Relu) relu(i, out.size());
        break;
      }
      case LayerKind::MaxPool:
        s.kind = StepKind::MaxPool;
        s.pool = ops::maxpool_shape(batch, in.C, in.H, in.W, l.k, l.stride,
                                    l.k > l.stride ? ops::Padding::Same : ops::Padding::Valid, style);
        s.out_buf = new_buf(out.size());
        s.aux = p.n_aux++;
        push(s);
        break;
    }
    in = out;
  }
  return p;
}

}  // namespace veridl::net
