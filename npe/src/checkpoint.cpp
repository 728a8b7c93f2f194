#include "npe/model/checkpoint.h"

#include <filesystem>
#include <functional>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "npe/core/io.h"
#include "npe/core/json.h"

namespace npe::model {

void save_checkpoint(const std::string& path, NPEImpl& net, nlohmann::json meta, torch::optim::Optimizer* optimizer) {
  meta["format"] = "npe-checkpoint";
  meta["format_version"] = 1;
  meta["model"] = net.config().to_json();
  torch::serialize::OutputArchive archive;
  archive.write("npe_meta", c10::IValue(meta.dump()));
  torch::serialize::OutputArchive model_archive;
  net.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    torch::serialize::OutputArchive opt_archive;
    optimizer->save(opt_archive);
    archive.write("optimizer", opt_archive);
  }
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

namespace {
std::string who_for(const std::string& path, const std::string& flag) {
  return flag.empty() ? fmt::format("checkpoint '{}'", path) : fmt::format("{} '{}'", flag, path);
}

// `load` fills the archive from a file or from bytes. libtorch reports a bad archive with
// c10::Error, and its zip and pickle readers with other std::exceptions: all are one npe::Error.
torch::serialize::InputArchive open_archive(const std::function<void(torch::serialize::InputArchive&)>& load,
                                            const std::string& who) {
  torch::serialize::InputArchive archive;
  try {
    load(archive);
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: not a readable npe checkpoint (expected a torch archive written "
                            "by npe-train; the file is corrupt, truncated or of another kind)",
                            who));
  }
  return archive;
}

torch::serialize::InputArchive open_archive(const std::string& path, const torch::Device& device,
                                            const std::string& flag) {
  const std::string who = who_for(path, flag);
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: no such file", who));
  return open_archive([&](torch::serialize::InputArchive& a) { a.load_from(path, device); }, who);
}

// Module::load copies each stored tensor into the model's with Tensor::set_, which takes another
// dtype's bytes as they are (a float64 archive would load as garbage float32 weights) and any
// shape. Every stored tensor is therefore read on its own first and checked: float32, the shape
// the model expects, finite values.
void check_stored_tensors(const torch::nn::Module& module, torch::serialize::InputArchive& archive,
                          const std::string& prefix, const std::string& who) {
  auto check = [&](const std::string& name, const torch::Tensor& want, bool is_buffer) {
    torch::Tensor stored;
    if (!archive.try_read(name, stored, is_buffer) || !stored.defined())
      throw Error(fmt::format("{}: tensor '{}{}' is missing", who, prefix, name));
    const bool finite = torch::isfinite(stored).all().item<bool>();
    if (stored.scalar_type() != torch::kFloat32 || stored.sizes() != want.sizes() || !finite)
      throw Error(fmt::format("{}: tensor '{}{}' expected float32 of shape [{}] with finite values, found {} [{}]{}",
                              who, prefix, name, fmt::join(want.sizes().vec(), ", "),
                              c10::toString(stored.scalar_type()), fmt::join(stored.sizes().vec(), ", "),
                              finite ? "" : " with non-finite values"));
  };
  for (const auto& kv : module.named_parameters(/*recurse=*/false)) check(kv.key(), kv.value(), false);
  for (const auto& kv : module.named_buffers(/*recurse=*/false)) check(kv.key(), kv.value(), true);
  for (const auto& kv : module.named_children()) {
    torch::serialize::InputArchive child;
    if (!archive.try_read(kv.key(), child))
      throw Error(fmt::format("{}: module '{}{}' is missing", who, prefix, kv.key()));
    check_stored_tensors(*kv.value(), child, prefix + kv.key() + ".", who);
  }
}

Checkpoint from_archive(torch::serialize::InputArchive& archive, const std::string& who, std::optional<Kind> expected,
                        const torch::Device& device) {
  c10::IValue meta_value;
  try {
    if (!archive.try_read("npe_meta", meta_value) || !meta_value.isString())
      throw Error(fmt::format("{}: not an npe checkpoint (no npe_meta record)", who));
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: not an npe checkpoint (unreadable npe_meta record)", who));
  }
  Checkpoint ck;
  ck.meta = parse_json(meta_value.toStringRef(), who + " npe_meta", "a JSON object");
  if (!ck.meta.is_object()) throw Error(fmt::format("{}: npe_meta is not a JSON object", who));
  const auto format = ck.meta.contains("format") ? json_as<std::string>(ck.meta["format"]) : std::nullopt;
  const auto version = ck.meta.contains("format_version") ? json_as<int>(ck.meta["format_version"]) : std::nullopt;
  if (format != "npe-checkpoint" || version != 1)
    throw Error(fmt::format("{}: expected format npe-checkpoint version 1, found {} {}", who,
                            ck.meta.value("format", nlohmann::json("?")).dump().substr(0, 40),
                            ck.meta.value("format_version", nlohmann::json("?")).dump().substr(0, 40)));
  if (!ck.meta.contains("model")) throw Error(fmt::format("{}: checkpoint has no model config", who));
  if (ck.meta.contains("step")) {
    const auto step = json_as<int64_t>(ck.meta["step"]);
    if (!step || *step < 0)
      throw Error(
          fmt::format("{}: step expected an integer >= 0, found {}", who, ck.meta["step"].dump().substr(0, 40)));
    ck.step = *step;
  }
  if (ck.meta.contains("loss_count") && !(json_as<int64_t>(ck.meta["loss_count"]) >= int64_t{0}))
    throw Error(fmt::format("{}: loss_count expected an integer >= 0, found {}", who,
                            ck.meta["loss_count"].dump().substr(0, 40)));
  ck.config = ModelConfig::from_json(ck.meta["model"], who);
  if (expected && ck.config.kind != *expected)
    throw Error(
        fmt::format("{}: holds a {} model, expected a {} model", who, kind_name(ck.config.kind), kind_name(*expected)));
  ck.net = make_model(ck.config);
  torch::serialize::InputArchive model_archive;
  try {
    if (!archive.try_read("model", model_archive))
      throw Error(fmt::format("{}: not an npe checkpoint (no model record)", who));
    check_stored_tensors(*ck.net, model_archive, "", who);
    ck.net->load(model_archive);
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw Error(
        fmt::format("{}: weights do not match the {} model described in its config", who, kind_name(ck.config.kind)));
  }
  ck.net->to(device);
  ck.net->eval();
  return ck;
}
}  // namespace

Checkpoint load_checkpoint(const std::string& path, std::optional<Kind> expected, const std::string& flag,
                           const torch::Device& device) {
  auto archive = open_archive(path, device, flag);
  return from_archive(archive, who_for(path, flag), expected, device);
}

Checkpoint parse_checkpoint(const std::string& bytes, const std::string& name, std::optional<Kind> expected) {
  const std::string who = fmt::format("checkpoint '{}'", name);
  std::istringstream in(bytes);
  auto archive = open_archive([&](torch::serialize::InputArchive& a) { a.load_from(in, torch::kCPU); }, who);
  return from_archive(archive, who, expected, torch::kCPU);
}

std::vector<datagen::IdentityDifference> check_dataset_matches(const Checkpoint& ck, const datagen::Manifest& m,
                                                               const std::string& ckpt_path, const std::string& prefix,
                                                               const std::set<std::string>& allowed) {
  const datagen::WorldIdentity data = datagen::world_identity(m);
  if (!ck.meta.contains("world_identity")) {
    if (allowed.count("all")) return {};
    throw Error(fmt::format("checkpoint '{}' records no training world (field 'world_identity'; checkpoints "
                            "written before npe 0.2 lack it): expected one to compare with dataset '{}'; "
                            "retrain, or allow every field to differ (allow_world_transfer all)",
                            ckpt_path, prefix));
  }
  const datagen::WorldIdentity trained = datagen::WorldIdentity::from_json(ck.meta["world_identity"],
                                                                           "checkpoint '" + ckpt_path + "'");
  std::vector<datagen::IdentityDifference> transfers;
  for (const auto& d : datagen::identity_differences(trained, data)) {
    if (allowed.count(d.field) || allowed.count("all")) {
      transfers.push_back(d);
      continue;
    }
    throw Error(fmt::format("checkpoint '{}' was trained on a world with {} {}, dataset '{}' has {} {}: expected "
                            "the same world (only the ball count may differ); to evaluate it there on purpose, "
                            "allow the field to differ (allow_world_transfer {})",
                            ckpt_path, d.field, d.first, prefix, d.field, d.second, d.field));
  }
  return transfers;
}

void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer, const torch::Device& device) {
  auto archive = open_archive(path, device, "");
  torch::serialize::InputArchive opt_archive;
  try {
    archive.read("optimizer", opt_archive);
    optimizer.load(opt_archive);
  } catch (const std::exception&) {
    throw FieldError("resume", fmt::format(" '{}': the optimizer state is missing or does not match "
                                           "this run's optimizer",
                                           path));
  }
}

}  // namespace npe::model
