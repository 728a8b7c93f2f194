// npe/gpu/generate.h: datasets from the GPU engine (npe-datagen --engine gpu), in the same
// format and manifest as the Box2D generator.
#pragma once

#include "npe/datagen/generate.h"
#include "npe/gpu/engine.h"

namespace npe::gpu {

// The engine spec of one chunk of a dataset world: spec_from_world for `num_scenes` scenes.
// The world's substeps and contact_omega of 0 mean "choose" (choose_contact).
datagen::WorldDef resolve_engine_world(const datagen::WorldDef& world);

// True when the centre (x, y) keeps a ball of `radius` clear of every obstacle.
bool clear_of_obstacles(const datagen::WorldDef& world, double x, double y);

// Writes a dataset simulated by the engine: scene i depends only on (seed, i) (the same
// initial conditions as the Box2D generator, plus rejection of centres that overlap an
// obstacle); float32 on CUDA when `use_cuda`, otherwise the CPU reference in float32, which
// gives the same bytes. On CUDA, chunks of scenes are simulated while the previous chunk is
// copied (pinned buffers, asynchronous copies) and written, so GPU memory holds two chunks
// whatever num_scenes. The manifest records engine "npe-gpu", the substeps and contact_omega.
// Throws npe::Error as datagen::write_dataset does, and on CUDA errors.
datagen::DatagenSummary generate_dataset_gpu(const datagen::DatagenConfig& config, bool use_cuda,
                                             int64_t chunk_scenes = 0);

}  // namespace npe::gpu
