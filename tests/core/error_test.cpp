// npe/core/error.h: the errors libraries throw; FieldError names a field for the tool to map.
#include "npe/core/error.h"

#include <gtest/gtest.h>

namespace npe {
namespace {

TEST(FieldError, NamesTheFieldAndKeepsTheRest) {
  const FieldError e("frame_dt", ": expected a positive frame interval in s, found 0");
  EXPECT_STREQ(e.what(), "frame_dt: expected a positive frame interval in s, found 0");
  EXPECT_EQ(e.field(), "frame_dt");
  EXPECT_EQ(e.rest(), ": expected a positive frame interval in s, found 0");
  // caught as the Error every tool reports
  try {
    throw FieldError("radius", " -1: expected > 0");
  } catch (const Error& base) {
    EXPECT_STREQ(base.what(), "radius -1: expected > 0");
  }
}

}  // namespace
}  // namespace npe
