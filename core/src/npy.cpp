#include "npe/core/npy.h"

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

// Finds `'key':` in the header dict and returns the position just after the colon.
size_t find_key(const std::string& header, const std::string& key, const std::string& name) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos)
    throw Error(fmt::format("{}: .npy header has no '{}' field (header: {})", name, key, header));
  const size_t colon = header.find(':', k);
  if (colon == std::string::npos) throw Error(fmt::format("{}: .npy header field '{}' has no value", name, key));
  size_t p = colon + 1;
  while (p < header.size() && header[p] == ' ') ++p;
  return p;
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

NpyArray parse_npy_f32(const std::string& bytes, const std::string& name) {
  if (bytes.size() < kMagicLen + 4 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    throw Error(fmt::format("{}: not a .npy file (expected the magic \\x93NUMPY at byte 0, file "
                            "has {} bytes)",
                            name, bytes.size()));
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, prefix = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(fmt::format("{}: truncated .npy header ({} bytes)", name, bytes.size()));
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    prefix = 12;
  } else {
    throw Error(fmt::format("{}: unsupported .npy version {} (expected 1, 2 or 3)", name, major));
  }
  if (header_len > bytes.size() - prefix)
    throw Error(fmt::format("{}: truncated .npy header (header says {} bytes, file has {} after "
                            "the prefix)",
                            name, header_len, bytes.size() - prefix));
  const std::string header = bytes.substr(prefix, header_len);

  size_t p = find_key(header, "descr", name);
  const std::string descr = header.substr(p, 5);
  if (descr != "'<f4'")
    throw Error(fmt::format("{}: .npy dtype expected '<f4' (little-endian float32), found {}", name,
                            header.substr(p, header.find(',', p) - p)));
  p = find_key(header, "fortran_order", name);
  if (header.compare(p, 5, "False") != 0)
    throw Error(fmt::format("{}: .npy fortran_order expected False (C order), found {}", name, header.substr(p, 5)));

  NpyArray out;
  out.shape = parse_shape(header, name);
  size_t count = 1;
  for (int64_t d : out.shape) {
    if (d != 0 && count > std::numeric_limits<size_t>::max() / 4 / static_cast<size_t>(d))
      throw Error(fmt::format("{}: .npy shape {} is too large", name, shape_tuple(out.shape)));
    count *= static_cast<size_t>(d);
  }
  const size_t data_bytes = bytes.size() - prefix - header_len;
  if (data_bytes != count * sizeof(float))
    throw Error(fmt::format("{}: .npy data size mismatch: shape {} needs {} bytes, file has {} "
                            "(truncated or corrupt file)",
                            name, shape_tuple(out.shape), count * sizeof(float), data_bytes));
  out.data.resize(count);
  if (count) std::memcpy(out.data.data(), bytes.data() + prefix + header_len, data_bytes);
  return out;
}

NpyArray read_npy_f32(const std::filesystem::path& path) { return parse_npy_f32(read_file(path), path.string()); }

}  // namespace npe
