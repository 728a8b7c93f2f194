// npe-train: trains a classic or modern Neural Physics Engine. See README.md.
#include "cli.h"
#include "npe/core/error.h"
#include "npe/core/interrupt.h"
#include "npe/model/train.h"

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-train", [&] {
    using npe::model::Kind;
    cxxopts::Options o("npe-train", "Train a Neural Physics Engine (Chang et al. 2017) on an npe dataset.\n"
                                    "Defaults in [classic | --modern] form follow the paper and the modern recipe.");
    o.add_options()("modern",
                    "train the modern model (pre-LayerNorm residual MLPs, AdamW, warm-up + cosine); = --model modern")(
        "model",
        "classic | modern | np | lstm | gns (np, lstm: the paper's baselines, trained with the classic recipe; gns: a "
        "graph network simulator, trained with the modern recipe, --msg_dim wide, --mp_steps message-passing steps)",
        cxxopts::value<std::string>()->default_value("classic"))(
        "dataset_prefix", "dataset prefix (PREFIX.json, PREFIX_train.npy, ...)",
        cxxopts::value<std::string>()->default_value("data/balls_n4_t60_uniform/balls_n4_t60_uniform"))(
        "batch_size", "windows per batch [50 | 2048]", cxxopts::value<int64_t>())(
        "total_samples", "training windows to draw in all [60000000 | 200000000]", cxxopts::value<int64_t>())(
        "eval_every", "steps between validations (0: 20 over the run)", cxxopts::value<int64_t>()->default_value("0"))(
        "checkpoint_every",
        "steps between checkpoints of <name>.pt, written atomically (0: at each validation); "
        "--resume continues from the last",
        cxxopts::value<int64_t>()->default_value("0"))("val_windows",
                                                       "validation windows used (evenly spread over the val split)",
                                                       cxxopts::value<int64_t>()->default_value("20000"))(
        "name", "run name [the model's name: classic | modern | np | lstm | gns]", cxxopts::value<std::string>())(
        "checkpoint_dir", "where <name>.pt and <name>.best.pt go",
        cxxopts::value<std::string>()->default_value("checkpoints"))(
        "metrics_csv", "metrics CSV (default <checkpoint_dir>/<name>.csv)",
        cxxopts::value<std::string>()->default_value(""))("optimizer", "rmsprop | adam | adamw [rmsprop | adamw]",
                                                          cxxopts::value<std::string>())(
        "lr", "learning rate [3e-4 | 1e-3]", cxxopts::value<double>())("weight_decay", "weight decay [0 | 0.01]",
                                                                       cxxopts::value<double>())(
        "dropout", "dropout in residual blocks (modern)", cxxopts::value<double>()->default_value("0"))(
        "max_grad_norm", "gradient clipping, 0 = off [0 | 1.0]", cxxopts::value<double>())(
        "input_noise",
        "noise injection: Gaussian noise of this many feature standard deviations added to the "
        "input positions and velocities during training (0 = off)",
        cxxopts::value<double>()->default_value("0"))(
        "noise",
        "the input noise's law: independent (Gaussian on both input frames, target untouched) or random_walk "
        "(graph network simulators': a walk over the input frames, the target corrected to undo it)",
        cxxopts::value<std::string>()->default_value("independent"))(
        "msg_dim", "modern: message width; gns: latent width", cxxopts::value<int>()->default_value("96"))(
        "residual_velocity", "modern: the head predicts the velocity change dv and returns v(t) + dv (default: "
                             "it predicts v(t+1) directly)")("enc_blocks", "modern: encoder residual blocks",
                                                             cxxopts::value<int>()->default_value("3"))(
        "dec_blocks", "modern: decoder residual blocks", cxxopts::value<int>()->default_value("3"))(
        "mp_steps", "gns: message-passing steps", cxxopts::value<int>()->default_value("5"))(
        "expansion", "modern: hidden width = msg_dim x expansion", cxxopts::value<int>()->default_value("2"))(
        "neighborhood", "neighbourhood mask distance, ball radii", cxxopts::value<double>()->default_value("3.5"))(
        "device", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value("auto"))(
        "precision", "auto | fp32 | bf16 (auto: bf16 autocast for --modern on CUDA, float32 otherwise)",
        cxxopts::value<std::string>()->default_value("auto"))(
        "cuda_graph",
        "on CUDA, capture the training step as a CUDA graph and replay it (--cuda_graph=false: "
        "eager steps)",
        cxxopts::value<bool>()->default_value("true"))(
        "fused_step",
        "on CUDA, npe's hand-written training step instead of libtorch's ops and autograd: the "
        "classic model's forward, backward and update (two kernels a step), the modern model's bf16 loss and "
        "gradient (30 kernels for the default model) (--fused_step=false: libtorch's)",
        cxxopts::value<bool>()->default_value("true"))("threads", "CPU threads (0 = all cores)",
                                                       cxxopts::value<int>()->default_value("0"))(
        "seed", "random seed (initialisation and data order)", cxxopts::value<uint64_t>()->default_value("0"))(
        "resume", "continue from <checkpoint_dir>/<name>.pt if it exists (same flags required)")(
        "overwrite", "start afresh over an existing run of this --name (its checkpoints and metrics are replaced; "
                     "without it such a run is refused)")(
        "stop_after_steps",
        "stop, checkpointed, after this many steps of this run (0 = run to the end); "
        "--resume continues: splits a long run into time-limited jobs",
        cxxopts::value<int64_t>()->default_value("0"))("no_progress", "no progress bar")("h,help", "this help");
    auto r = npe::tools::parse(o, argc, argv);
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    Kind kind = Kind::Classic;
    try {
      kind = npe::model::kind_from_name(r["model"].as<std::string>());
    } catch (const npe::Error&) {
      throw npe::Error(
          fmt::format("--model: expected classic, modern, np, lstm or gns, found '{}'", r["model"].as<std::string>()));
    }
    if (r.count("modern")) {
      if (r.count("model") && kind != Kind::Modern)
        throw npe::Error(fmt::format("--modern and --model {}: choose one model", r["model"].as<std::string>()));
      kind = Kind::Modern;
    }
    npe::model::TrainConfig c = npe::model::default_train_config(kind);
    c.total_samples = npe::model::modern_recipe(kind) ? 200000000 : 60000000;
    c.dataset_prefix = r["dataset_prefix"].as<std::string>();
    if (r.count("batch_size")) c.batch_size = r["batch_size"].as<int64_t>();
    if (r.count("total_samples")) c.total_samples = r["total_samples"].as<int64_t>();
    c.eval_every = r["eval_every"].as<int64_t>();
    c.val_windows = r["val_windows"].as<int64_t>();
    c.checkpoint_every = r["checkpoint_every"].as<int64_t>();
    if (r.count("name")) c.name = r["name"].as<std::string>();
    c.checkpoint_dir = r["checkpoint_dir"].as<std::string>();
    c.metrics_csv = r["metrics_csv"].as<std::string>();
    if (r.count("optimizer")) c.optimizer = r["optimizer"].as<std::string>();
    if (r.count("lr")) c.lr = r["lr"].as<double>();
    if (r.count("weight_decay")) c.weight_decay = r["weight_decay"].as<double>();
    if (r.count("max_grad_norm")) c.max_grad_norm = r["max_grad_norm"].as<double>();
    c.input_noise = r["input_noise"].as<double>();
    c.noise = r["noise"].as<std::string>();
    c.model.dropout = r["dropout"].as<double>();
    c.model.msg_dim = r["msg_dim"].as<int>();
    c.model.residual_velocity = r.count("residual_velocity") > 0;
    c.model.enc_blocks = r["enc_blocks"].as<int>();
    c.model.dec_blocks = r["dec_blocks"].as<int>();
    c.model.expansion = r["expansion"].as<int>();
    if (c.model.msg_dim < 1 || c.model.enc_blocks < 0 || c.model.dec_blocks < 0 || c.model.expansion < 1)
      throw npe::Error("--msg_dim/--expansion: expected >= 1 and --enc_blocks/--dec_blocks >= 0");
    c.model.mp_steps = r["mp_steps"].as<int>();
    if (c.model.mp_steps < 0) throw npe::Error(fmt::format("--mp_steps: expected >= 0, found {}", c.model.mp_steps));
    if (kind == Kind::Modern) c.model.check_size("--msg_dim/--enc_blocks/--dec_blocks/--expansion");
    if (kind == Kind::GNS) c.model.check_size("--msg_dim/--mp_steps");
    if (!(c.model.dropout >= 0 && c.model.dropout < 1))
      throw npe::Error(fmt::format("--dropout: expected a value in [0, 1), found {}", c.model.dropout));
    c.neighborhood_radii = r["neighborhood"].as<double>();
    c.device = r["device"].as<std::string>();
    c.precision = r["precision"].as<std::string>();
    c.cuda_graph = r["cuda_graph"].as<bool>();
    c.fused_step = r["fused_step"].as<bool>();
    c.threads = r["threads"].as<int>();
    c.seed = r["seed"].as<uint64_t>();
    c.resume = r.count("resume") > 0;
    c.overwrite = r.count("overwrite") > 0;
    c.stop_after_steps = r["stop_after_steps"].as<int64_t>();
    if (c.stop_after_steps < 0)
      throw npe::Error(fmt::format("--stop_after_steps: expected >= 0, found {}", c.stop_after_steps));
    c.progress = r.count("no_progress") == 0;
    c.note = [](const std::string& text) { fmt::print(stderr, "npe-train: {}\n", text); };
    npe::install_interrupt_handlers();  // SIGINT/SIGTERM: a last checkpoint, then exit 130
    const auto res = npe::model::train(c);
    if (res.rank != 0) return res.interrupted ? 130 : 0;  // process 0 reports for a data-parallel run
    if (res.interrupted) {
      fmt::print(stderr,
                 "npe-train {}: interrupted at step {} of the run; checkpoint '{}' written; continue with "
                 "--resume\n",
                 c.name, res.steps, res.last_checkpoint);
      return 130;
    }
    if (res.stopped_early)
      fmt::print("npe-train {}: stopped after --stop_after_steps at step {}; continue with --resume\n", c.name,
                 res.steps);
    fmt::print("npe-train {}: {} steps, {:.1f} s, {:.0f} samples/s ({}{}); val MSE final {:.4e}, best {:.4e} "
               "(constant-velocity baseline {:.4e})\n  checkpoints {} and {}\n  metrics {}\n",
               c.name, res.steps, res.seconds, res.samples_per_s, res.bf16 ? "bf16" : "fp32",
               res.fused_step   ? ", hand-written step"
               : res.cuda_graph ? ", CUDA graph"
                                : "",
               res.final_val, res.best_val, res.baseline_val, res.last_checkpoint, res.best_checkpoint,
               res.metrics_csv);
    if (res.world_size > 1)
      fmt::print("  data parallel: {} processes, {} gradient all-reduce{} per step; replicas' largest parameter "
                 "difference at the end {:.3g}\n",
                 res.world_size, res.gradient_buckets, res.gradient_buckets == 1 ? "" : "s", res.replica_divergence);
    return 0;
  });
}
