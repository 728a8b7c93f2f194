// npe/core/json.h: checked reads of JSON for every npe file reader (manifests, checkpoint
// records, npe-optimize problems, npe-sysid outputs). nlohmann::json converts a number of the
// wrong kind silently, or with undefined behaviour (1e40 read as an int); these helpers accept a
// value only when it holds the requested type exactly.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "npe/core/error.h"

namespace npe {

// Parses JSON text. Syntax errors, and numbers beyond the range of a double, become npe::Error
// "<source>: not valid JSON (byte N): expected <what>".
nlohmann::json parse_json(const std::string& text, const std::string& source, const std::string& what);

// `v` as T when it holds one: int and int64_t from JSON integers within the type's range (2.5 and
// 1e40 are not integers), uint64_t from non-negative integers, double from any finite or infinite
// JSON number, bool from true/false, std::string from strings, std::vector<T> from arrays whose
// every element converts, std::array<double, 2> from arrays of two numbers. Otherwise nothing.
template <typename T>
std::optional<T> json_as(const nlohmann::json& v);
template <>
std::optional<int> json_as<int>(const nlohmann::json& v);
template <>
std::optional<int64_t> json_as<int64_t>(const nlohmann::json& v);
template <>
std::optional<uint64_t> json_as<uint64_t>(const nlohmann::json& v);
template <>
std::optional<double> json_as<double>(const nlohmann::json& v);
template <>
std::optional<bool> json_as<bool>(const nlohmann::json& v);
template <>
std::optional<std::string> json_as<std::string>(const nlohmann::json& v);
template <>
std::optional<std::vector<int>> json_as<std::vector<int>>(const nlohmann::json& v);
template <>
std::optional<std::vector<double>> json_as<std::vector<double>>(const nlohmann::json& v);
template <>
std::optional<std::array<double, 2>> json_as<std::array<double, 2>>(const nlohmann::json& v);

// The field `key` of the object `j` as T (json_as). Throws npe::Error "<source>: <kind> field
// '<where><key>' is missing", or "... has the wrong type or range (found <value>)"; `where` is the
// path of the enclosing object in messages (e.g. "world.").
template <typename T>
T json_field(const nlohmann::json& j, const char* key, const std::string& source, const std::string& kind,
             const std::string& where = "") {
  const std::string name = source + ": " + kind + " field '" + where + key + "'";
  if (!j.is_object() || !j.contains(key)) throw Error(name + " is missing");
  if (auto v = json_as<T>(j.at(key))) return *v;
  throw Error(name + " has the wrong type or range (found " + j.at(key).dump().substr(0, 80) + ")");
}

}  // namespace npe
