#include "veridl/prims/dropPath/primitive.hpp"

namespace veridl::prims {

std::vector<Example> DropPath::examples() {
  return {{"3x4x4, rate 0.1", nlohmann::json::object(), {{{3, 4, 4}}}},
          {"flat 9, rate 0.5", {{"rate", 0.5}}, {{{9}}}},
          {"tokens [5, 4], rate 0.3", {{"rate", 0.3}}, {{{5, 4}}}}};
}

}  // namespace veridl::prims
