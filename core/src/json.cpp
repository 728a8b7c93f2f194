#include "npe/core/json.h"

#include <limits>

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe {

nlohmann::json parse_json(const std::string& text, const std::string& source, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: not valid JSON (byte {}): expected {}", source, e.byte, what));
  } catch (const nlohmann::json::exception&) {  // out_of_range.406: a number beyond a double's range
    throw Error(fmt::format("{}: not valid JSON (a number beyond the range of a double): expected {}", source, what));
  }
}

namespace {
template <typename I>
std::optional<I> integer(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<I>::max())) return std::nullopt;
    return static_cast<I>(u);
  }
  if (v.is_number_integer()) {
    const auto s = v.get<int64_t>();
    if (s < static_cast<int64_t>(std::numeric_limits<I>::min()) ||
        (s > 0 && static_cast<uint64_t>(s) > static_cast<uint64_t>(std::numeric_limits<I>::max())))
      return std::nullopt;
    return static_cast<I>(s);
  }
  return std::nullopt;
}
}  // namespace

template <>
std::optional<int> json_as<int>(const nlohmann::json& v) {
  return integer<int>(v);
}
template <>
std::optional<int64_t> json_as<int64_t>(const nlohmann::json& v) {
  return integer<int64_t>(v);
}
template <>
std::optional<uint64_t> json_as<uint64_t>(const nlohmann::json& v) {
  return integer<uint64_t>(v);
}
template <>
std::optional<double> json_as<double>(const nlohmann::json& v) {
  return v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt;
}
template <>
std::optional<bool> json_as<bool>(const nlohmann::json& v) {
  return v.is_boolean() ? std::optional<bool>(v.get<bool>()) : std::nullopt;
}
template <>
std::optional<std::string> json_as<std::string>(const nlohmann::json& v) {
  return v.is_string() ? std::optional<std::string>(v.get<std::string>()) : std::nullopt;
}

namespace {
template <typename T>
std::optional<std::vector<T>> array(const nlohmann::json& v) {
  if (!v.is_array()) return std::nullopt;
  std::vector<T> out;
  out.reserve(v.size());
  for (const auto& e : v) {
    auto x = json_as<T>(e);
    if (!x) return std::nullopt;
    out.push_back(*x);
  }
  return out;
}
}  // namespace

template <>
std::optional<std::vector<int>> json_as<std::vector<int>>(const nlohmann::json& v) {
  return array<int>(v);
}
template <>
std::optional<std::vector<double>> json_as<std::vector<double>>(const nlohmann::json& v) {
  return array<double>(v);
}

template <>
std::optional<std::array<double, 2>> json_as<std::array<double, 2>>(const nlohmann::json& v) {
  const auto a = array<double>(v);
  if (!a || a->size() != 2) return std::nullopt;
  return std::array<double, 2>{(*a)[0], (*a)[1]};
}

}  // namespace npe
