#include "npe/model/checkpoint.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "npe/datagen/io.h"

namespace npe::model {

void save_checkpoint(const std::string& path, NPEImpl& net, nlohmann::json meta,
                     torch::optim::Optimizer* optimizer) {
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
torch::serialize::InputArchive open_archive(const std::string& path, const torch::Device& device,
                                            const std::string& flag) {
  const std::string who = flag.empty() ? fmt::format("checkpoint '{}'", path)
                                       : fmt::format("{} '{}'", flag, path);
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: no such file", who));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, device);
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: not a readable npe checkpoint (expected a torch archive written "
                            "by npe-train; the file is corrupt, truncated or of another kind)",
                            who));
  }
  return archive;
}
}  // namespace

Checkpoint load_checkpoint(const std::string& path, std::optional<Kind> expected,
                           const std::string& flag, const torch::Device& device) {
  const std::string who = flag.empty() ? fmt::format("checkpoint '{}'", path)
                                       : fmt::format("{} '{}'", flag, path);
  auto archive = open_archive(path, device, flag);
  c10::IValue meta_value;
  try {
    if (!archive.try_read("npe_meta", meta_value) || !meta_value.isString())
      throw Error(fmt::format("{}: not an npe checkpoint (no npe_meta record)", who));
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: not an npe checkpoint (unreadable npe_meta record)", who));
  }
  Checkpoint ck;
  try {
    ck.meta = nlohmann::json::parse(meta_value.toStringRef());
    if (!ck.meta.is_object()) throw Error(fmt::format("{}: npe_meta is not a JSON object", who));
    if (ck.meta.value("format", "") != "npe-checkpoint" || ck.meta.value("format_version", 0) != 1)
      throw Error(fmt::format("{}: expected format npe-checkpoint version 1, found {} {}", who,
                              ck.meta.value("format", std::string("?")), ck.meta.value("format_version", 0)));
    if (!ck.meta.contains("model")) throw Error(fmt::format("{}: checkpoint has no model config", who));
    ck.step = ck.meta.value("step", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: npe_meta record is not valid ({})", who, e.what()));
  }
  if (ck.step < 0) throw Error(fmt::format("{}: step expected >= 0, found {}", who, ck.step));
  ck.config = ModelConfig::from_json(ck.meta["model"], path);
  if (expected && ck.config.kind != *expected)
    throw Error(fmt::format("{}: holds a {} model, expected a {} model", who,
                            kind_name(ck.config.kind), kind_name(*expected)));
  ck.net = make_model(ck.config);
  // InputArchive::read copies tensors without comparing shapes: record what the model described
  // by the config expects, and compare after loading.
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected_shapes;
  for (const auto& kv : ck.net->named_parameters()) expected_shapes.emplace_back(kv.key(), kv.value().sizes().vec());
  for (const auto& kv : ck.net->named_buffers()) expected_shapes.emplace_back(kv.key(), kv.value().sizes().vec());
  torch::serialize::InputArchive model_archive;
  try {
    archive.read("model", model_archive);
    ck.net->load(model_archive);
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: weights do not match the {} model described in its config",
                            who, kind_name(ck.config.kind)));
  }
  auto params = ck.net->named_parameters();
  auto buffers = ck.net->named_buffers();
  for (const auto& [name, shape] : expected_shapes) {
    const torch::Tensor* t = params.find(name);
    if (!t) t = buffers.find(name);
    if (!t || t->sizes().vec() != shape || !torch::isfinite(*t).all().item<bool>())
      throw Error(fmt::format("{}: tensor '{}' expected shape [{}] with finite values, found {}", who, name,
                              fmt::join(shape, ", "),
                              t ? fmt::format("[{}]", fmt::join(t->sizes().vec(), ", ")) : "nothing"));
  }
  ck.net->to(device);
  ck.net->eval();
  return ck;
}

void check_dataset_matches(const Checkpoint& ck, const datagen::Manifest& m, const std::string& ckpt_path,
                           const std::string& prefix) {
  if (!ck.meta.contains("dataset") || !ck.meta["dataset"].is_object()) return;  // weights-only checkpoint
  const nlohmann::json& d = ck.meta["dataset"];
  const std::pair<const char*, double> now[] = {{"width", m.world.width},
                                                {"height", m.world.height},
                                                {"radius", m.world.radius},
                                                {"vel_scale", m.vel_scale()},
                                                {"frame_dt", m.world.frame_dt}};
  for (const auto& [key, value] : now) {
    if (!d.contains(key) || !d[key].is_number()) continue;
    const double was = d[key].get<double>();
    if (std::abs(was - value) > 1e-9 * std::max(1.0, std::abs(value)))
      throw Error(fmt::format("checkpoint '{}' was trained on a world with {} {}, dataset '{}' has {} {}: its "
                              "predictions would be in the wrong units",
                              ckpt_path, key, was, prefix, key, value));
  }
}

void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer,
                          const torch::Device& device) {
  auto archive = open_archive(path, device, "--resume");
  torch::serialize::InputArchive opt_archive;
  try {
    archive.read("optimizer", opt_archive);
    optimizer.load(opt_archive);
  } catch (const c10::Error&) {
    throw Error(fmt::format("--resume '{}': the optimizer state is missing or does not match "
                            "this run's optimizer", path));
  }
}

}  // namespace npe::model
