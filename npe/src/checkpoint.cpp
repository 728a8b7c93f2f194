#include "npe/model/checkpoint.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

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
  if (!archive.try_read("npe_meta", meta_value) || !meta_value.isString())
    throw Error(fmt::format("{}: not an npe checkpoint (no npe_meta record)", who));
  Checkpoint ck;
  try {
    ck.meta = nlohmann::json::parse(meta_value.toStringRef());
  } catch (const nlohmann::json::exception&) {
    throw Error(fmt::format("{}: npe_meta record is not valid JSON", who));
  }
  if (ck.meta.value("format", "") != "npe-checkpoint" || ck.meta.value("format_version", 0) != 1)
    throw Error(fmt::format("{}: expected format npe-checkpoint version 1, found {} {}", who,
                            ck.meta.value("format", std::string("?")), ck.meta.value("format_version", 0)));
  if (!ck.meta.contains("model")) throw Error(fmt::format("{}: checkpoint has no model config", who));
  ck.config = ModelConfig::from_json(ck.meta["model"], path);
  if (expected && ck.config.kind != *expected)
    throw Error(fmt::format("{}: holds a {} model, expected a {} model", who,
                            kind_name(ck.config.kind), kind_name(*expected)));
  ck.step = ck.meta.value("step", int64_t{0});
  ck.net = make_model(ck.config);
  torch::serialize::InputArchive model_archive;
  try {
    archive.read("model", model_archive);
    ck.net->load(model_archive);
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: weights do not match the {} model described in its config",
                            who, kind_name(ck.config.kind)));
  }
  ck.net->to(device);
  ck.net->eval();
  return ck;
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
