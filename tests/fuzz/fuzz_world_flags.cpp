// libFuzzer harness: the world flags that take structured text, --num_balls (parse_ball_counts)
// and --obstacles (parse_obstacles), then validate() on the world. Input: the --num_balls text,
// a newline, the --obstacles text. Corpus: corpus/world_flags/.
#include "fuzz_util.h"
#include "npe/datagen/world.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = npe::fuzz::bytes(data, size);
  const size_t nl = text.find('\n');
  return npe::fuzz::expect_npe_error([&] {
    npe::datagen::WorldDef w;
    npe::datagen::parse_ball_counts(w, text.substr(0, nl));
    w.obstacles = npe::datagen::parse_obstacles(nl == std::string::npos ? "" : text.substr(nl + 1));
    npe::datagen::validate(w);
    if (npe::datagen::format_ball_counts(w).empty()) std::abort();
  });
}
