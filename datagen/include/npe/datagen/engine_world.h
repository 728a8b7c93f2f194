// npe/datagen/engine_world.h: a dataset world (WorldDef) simulated by npe's own engine: its
// engine spec, its random scenes, and datasets written by the engine (npe-datagen --engine gpu)
// in the same format and manifest as the Box2D generator.
#pragma once

#include <cstdint>

#include "npe/datagen/generate.h"
#include "npe/datagen/world.h"
#include "npe/gpu/engine.h"
#include "npe/gpu/scenes.h"

namespace npe::datagen {

// The engine's settings of a world, every one resolved: contact_omega and substeps from
// world.engine when set (> 0), otherwise from gpu::choose_contact(2 * max_speed, radius,
// frame_dt); the onset ramp from world.engine when set (>= 0), otherwise a quarter of the peak
// penetration at 2 * max_speed. Resolving resolved settings changes nothing.
EngineSettings resolve_engine(const WorldDef& world);

// The engine spec equivalent to a dataset world: box, radius, restitution, frame_dt, obstacles,
// and the settings of resolve_engine(world). Radii and masses are filled with the world's radius
// and mass for `num_scenes` scenes (set per-scene masses afterwards). Throws npe::Error for mixed
// ball counts (the engine runs one count per batch).
gpu::WorldSpec spec_from_world(const WorldDef& world, int64_t num_scenes);

// True when the centre (x, y) px keeps a ball of the world's radius clear of every obstacle.
bool clear_of_obstacles(const WorldDef& world, double x, double y);

// `num_scenes` scenes of the dataset world `w`, from scene `first_scene` on (sample_scene(w, seed,
// first_scene + i) for scene i, masses included, centres clear of obstacles), with the engine spec
// of spec_from_world.
gpu::Scene dataset_scenes(const WorldDef& w, int64_t num_scenes, uint64_t seed, int64_t first_scene = 0);

// Writes a dataset simulated by the engine: scene i depends only on (seed, i) (the same
// initial conditions as the Box2D generator, plus rejection of centres that overlap an
// obstacle); float32 on CUDA when `use_cuda`, otherwise the CPU reference in float32, which
// gives the same bytes. On CUDA, chunks of scenes are simulated while the previous chunk is
// copied (pinned buffers, asynchronous copies) and written, so GPU memory holds two chunks
// whatever num_scenes. The manifest records engine "npe-gpu", the substeps and contact_omega.
// Throws npe::Error as write_dataset does, and on CUDA errors.
DatagenSummary generate_dataset_gpu(const DatagenConfig& config, bool use_cuda, int64_t chunk_scenes = 0);

}  // namespace npe::datagen
