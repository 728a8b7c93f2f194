// npe/core/npy.h: float32 arrays in NumPy's .npy format (version 1.0 written; 1.0-3.0 read),
// which numpy.load and torch (via numpy) open without npe code.
// Format reference: numpy/lib/format.py ("NEP 1 - A Simple File Format for NumPy Arrays").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace npe {

// A C-order float32 array. data.size() == product(shape).
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// The .npy header (magic, version 1.0, little-endian '<f4', C order), padded so that the data
// starts on a 64-byte boundary.
std::string npy_header_f32(const std::vector<int64_t>& shape);

// Writes `data` (product(shape) floats) to `path` atomically (temp file + rename).
// Throws npe::Error naming `path` on failure.
void write_npy_f32(const std::filesystem::path& path, const std::vector<int64_t>& shape, const float* data);

// Reads and validates a .npy file: magic, version, header syntax, dtype '<f4', C order, shape,
// and the data size against the file length. Throws npe::Error naming `path` and the field that
// is wrong (expected vs found) on any mismatch; never reads past the end of the buffer.
NpyArray read_npy_f32(const std::filesystem::path& path);

// As read_npy_f32, from bytes already in memory (`name` is used in error messages).
NpyArray parse_npy_f32(const std::string& bytes, const std::string& name);

}  // namespace npe
