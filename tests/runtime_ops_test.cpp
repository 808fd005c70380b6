// Per-op harness: every registered op, reference kernel vs XNNPACK backend, random shapes and data.
// fp32 within 1e-4 relative, int8 within one quantization step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "runtime/backend.h"
#include "runtime/op_registry.h"
#include "runtime_op_cases.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

TEST(RuntimeOps, EveryRegisteredOpHasAGenerator) {
  const auto gens = generators();
  for (const OpDef& op : OpRegistry::instance().ops())
    EXPECT_TRUE(gens.count(op.name)) << "no test generator for op " << op.name;
  EXPECT_EQ(OpRegistry::instance().ops().size(), 15u);
}

class RuntimeOpParity : public ::testing::TestWithParam<std::string> {};

TEST_P(RuntimeOpParity, ReferenceMatchesXnnpack) {
  const std::string op_name = GetParam();
  const Generator generate = generators().at(op_name);
  auto reference = make_reference_backend();
  auto xnnpack = make_xnnpack_backend(1);
  int checked = 0;
  std::set<int> int8_values;  // guards against saturated (trivially equal) int8 outputs
  for (int int8 = 0; int8 < 2; ++int8) {
    for (int trial = 0; trial < 25; ++trial) {
      std::mt19937 rng(1000 * int8 + trial + std::hash<std::string>()(op_name) % 7919);
      OpCase c;
      c.node.op = op_name;
      c.node.output = "y";
      for (size_t i = 0; i < 3; ++i) c.node.inputs.push_back("x" + std::to_string(i));
      if (!generate(rng, int8 != 0, &c)) break;
      c.node.inputs.resize(c.infos.size());
      std::vector<const void*> ptrs;
      for (const auto& in : c.inputs) ptrs.push_back(in.data());
      TensorInfo ref_info, xnn_info;
      std::vector<uint8_t> ref_out, xnn_out;
      const std::string what = op_name + (int8 ? " int8" : " f32") + " trial " +
                               std::to_string(trial) + " input " + shape_string(c.infos[0].shape);
      Status s = reference->run_node(c.node, c.infos, ptrs, c.constants, &ref_info, &ref_out);
      ASSERT_TRUE(s.ok()) << what << ": " << s.message;
      s = xnnpack->run_node(c.node, c.infos, ptrs, c.constants, &xnn_info, &xnn_out);
      ASSERT_TRUE(s.ok()) << what << ": " << s.message;
      ASSERT_EQ(ref_info.shape, xnn_info.shape) << what;
      ASSERT_EQ(ref_out.size(), xnn_out.size()) << what;
      const size_t count = static_cast<size_t>(shape_elements(ref_info.shape));
      if (ref_info.dtype == DType::kF32) {
        const float* a = reinterpret_cast<const float*>(ref_out.data());
        const float* b = reinterpret_cast<const float*>(xnn_out.data());
        for (size_t i = 0; i < count; ++i)
          ASSERT_NEAR(a[i], b[i], 1e-4f * std::max(1.0f, std::fabs(a[i]))) << what << " at " << i;
      } else {
        const int8_t* a = reinterpret_cast<const int8_t*>(ref_out.data());
        const int8_t* b = reinterpret_cast<const int8_t*>(xnn_out.data());
        for (size_t i = 0; i < count; ++i) {
          ASSERT_LE(std::abs(a[i] - b[i]), 1) << what << " at " << i;
          int8_values.insert(a[i]);
        }
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  if (!int8_values.empty()) EXPECT_GT(int8_values.size(), 20u) << "int8 outputs look saturated";
}

INSTANTIATE_TEST_SUITE_P(AllOps, RuntimeOpParity, ::testing::ValuesIn(registered_op_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace adascale
