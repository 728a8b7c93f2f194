#include "npe/core/npy.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "npe/core/error.h"
#include "npe/core/io.h"

namespace npe {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

std::string shape_tuple(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

// Finds the key `'key'` of the header dict (a quoted key after '{' or ',' and before ':', never
// the same text inside a value) and returns the position of its value.
size_t find_key(const std::string& header, const std::string& key, const std::string& name) {
  const std::string quoted = "'" + key + "'";
  for (size_t k = header.find(quoted); k != std::string::npos; k = header.find(quoted, k + 1)) {
    size_t before = k;
    while (before > 0 && header[before - 1] == ' ') --before;
    size_t after = k + quoted.size();
    while (after < header.size() && header[after] == ' ') ++after;
    if (before == 0 || (header[before - 1] != '{' && header[before - 1] != ',')) continue;
    if (after >= header.size() || header[after] != ':') continue;
    size_t p = after + 1;
    while (p < header.size() && header[p] == ' ') ++p;
    return p;
  }
  throw Error(fmt::format("{}: .npy header has no '{}' field (header: {})", name, key, header.substr(0, 200)));
}

std::vector<int64_t> parse_shape(const std::string& header, const std::string& name) {
  size_t p = find_key(header, "shape", name);
  if (p >= header.size() || header[p] != '(')
    throw Error(fmt::format("{}: .npy 'shape' expected a tuple, found: {}", name, header.substr(p, 20)));
  const size_t close = header.find(')', p);
  if (close == std::string::npos) throw Error(fmt::format("{}: .npy 'shape' tuple is not closed", name));
  std::vector<int64_t> shape;
  std::string body = header.substr(p + 1, close - p - 1);
  size_t i = 0;
  while (i < body.size()) {
    while (i < body.size() && (body[i] == ' ' || body[i] == ',')) ++i;
    if (i >= body.size()) break;
    if (body[i] < '0' || body[i] > '9')
      throw Error(fmt::format("{}: .npy 'shape' expected non-negative integers, found '{}'", name, body));
    int64_t v = 0;
    while (i < body.size() && body[i] >= '0' && body[i] <= '9') {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10)
        throw Error(fmt::format("{}: .npy 'shape' dimension too large in '{}'", name, body));
      v = v * 10 + (body[i] - '0');
      ++i;
    }
    shape.push_back(v);
  }
  return shape;
}

}  // namespace

std::string npy_header_f32(const std::vector<int64_t>& shape) {
  std::string dict = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shape_tuple(shape));
  // magic(6) + version(2) + header_len(2) + dict + padding + '\n' must be a multiple of 64.
  const size_t unpadded = kMagicLen + 2 + 2 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out(kMagic, kMagicLen);
  out.push_back('\x01');
  out.push_back('\x00');
  const uint16_t len = static_cast<uint16_t>(dict.size());
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>(len >> 8));
  return out + dict;
}

void write_npy_f32(const std::filesystem::path& path, const std::vector<int64_t>& shape, const float* data) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  const std::string header = npy_header_f32(shape);
  write_file_atomic(path, [&](std::FILE* f) {
    // .npy data is little-endian '<f4'; npe only builds on little-endian hosts (x86-64, arm64).
    static_assert(sizeof(float) == 4, "float must be IEEE-754 binary32");
    if (std::fwrite(header.data(), 1, header.size(), f) != header.size() ||
        (count && std::fwrite(data, sizeof(float), count, f) != count))
      throw Error(fmt::format("error writing '{}'", path.string()));
  });
}

namespace {

constexpr size_t kMaxHeaderLen = size_t{1} << 20;  // numpy writes < 64 KiB; beyond 1 MiB a file is corrupt

// The header of a .npy file of `file_size` bytes whose first bytes are `head` (at least the
// prefix, 12 bytes or the whole file): its length and where the data starts.
struct NpyLayout {
  size_t prefix = 0, header_len = 0;
  size_t data_offset() const { return prefix + header_len; }
};

NpyLayout npy_layout(const char* head, size_t head_size, uint64_t file_size, const std::string& name) {
  if (head_size < kMagicLen + 4 || std::memcmp(head, kMagic, kMagicLen) != 0)
    throw Error(fmt::format("{}: not a .npy file (expected the magic \\x93NUMPY at byte 0, file "
                            "has {} bytes)",
                            name, file_size));
  const int major = static_cast<unsigned char>(head[6]);
  NpyLayout l;
  if (major == 1) {
    l.header_len = static_cast<unsigned char>(head[8]) | (static_cast<unsigned char>(head[9]) << 8);
    l.prefix = 10;
  } else if (major == 2 || major == 3) {
    if (head_size < 12) throw Error(fmt::format("{}: truncated .npy header ({} bytes)", name, file_size));
    for (int i = 0; i < 4; ++i) l.header_len |= static_cast<size_t>(static_cast<unsigned char>(head[8 + i])) << (8 * i);
    l.prefix = 12;
  } else {
    throw Error(fmt::format("{}: unsupported .npy version {} (expected 1, 2 or 3)", name, major));
  }
  if (l.header_len > kMaxHeaderLen)
    throw Error(fmt::format("{}: .npy header length {} bytes: expected at most {} (a corrupt file)", name, l.header_len,
                            kMaxHeaderLen));
  if (l.header_len > file_size - l.prefix)
    throw Error(fmt::format("{}: truncated .npy header (header says {} bytes, file has {} after "
                            "the prefix)",
                            name, l.header_len, file_size - l.prefix));
  return l;
}

// Shape and element count from the header dict; checks dtype and order.
std::vector<int64_t> npy_shape(const std::string& header, const std::string& name, size_t* count) {
  size_t p = find_key(header, "descr", name);
  const std::string descr = header.substr(p, 5);
  if (descr != "'<f4'")
    throw Error(fmt::format("{}: .npy dtype expected '<f4' (little-endian float32), found {}", name,
                            header.substr(p, std::min<size_t>(40, header.find(',', p) - p))));
  p = find_key(header, "fortran_order", name);
  if (header.compare(p, 5, "False") != 0)
    throw Error(fmt::format("{}: .npy fortran_order expected False (C order), found {}", name, header.substr(p, 5)));
  std::vector<int64_t> shape = parse_shape(header, name);
  size_t n = 1;
  for (int64_t d : shape) {
    if (d != 0 && n > std::numeric_limits<size_t>::max() / 4 / static_cast<size_t>(d))
      throw Error(fmt::format("{}: .npy shape {} is too large", name, shape_tuple(shape)));
    n *= static_cast<size_t>(d);
  }
  *count = n;
  return shape;
}

void check_data_size(uint64_t data_bytes, size_t count, const std::vector<int64_t>& shape, const std::string& name) {
  if (data_bytes != count * sizeof(float))
    throw Error(fmt::format("{}: .npy data size mismatch: shape {} needs {} bytes, file has {} "
                            "(truncated or corrupt file)",
                            name, shape_tuple(shape), count * sizeof(float), data_bytes));
}

}  // namespace

NpyArray parse_npy_f32(const std::string& bytes, const std::string& name) {
  const NpyLayout l = npy_layout(bytes.data(), bytes.size(), bytes.size(), name);
  NpyArray out;
  size_t count = 0;
  out.shape = npy_shape(bytes.substr(l.prefix, l.header_len), name, &count);
  check_data_size(bytes.size() - l.data_offset(), count, out.shape, name);
  out.data.resize(count);
  if (count) std::memcpy(out.data.data(), bytes.data() + l.data_offset(), count * sizeof(float));
  return out;
}

NpyArray read_npy_f32(const std::filesystem::path& path) {
  // Bounded: a regular file only, the header read first, and the data's size checked against the
  // file's before a byte of it is read or allocated.
  const std::string name = path.string();
  InputFile in(path);
  char head[12] = {};
  const size_t head_size = static_cast<size_t>(std::min<uint64_t>(in.size(), sizeof(head)));
  in.read(head, head_size, ".npy prefix");
  const NpyLayout l = npy_layout(head, head_size, in.size(), name);
  std::string header(l.header_len, '\0');
  std::memcpy(header.data(), head + l.prefix, std::min(l.header_len, head_size - l.prefix));
  if (l.header_len > head_size - l.prefix)
    in.read(header.data() + (head_size - l.prefix), l.header_len - (head_size - l.prefix), ".npy header");
  NpyArray out;
  size_t count = 0;
  out.shape = npy_shape(header, name, &count);
  check_data_size(in.size() - l.data_offset(), count, out.shape, name);
  out.data.resize(count);
  in.read(out.data.data(), count * sizeof(float), ".npy data");
  return out;
}

}  // namespace npe
