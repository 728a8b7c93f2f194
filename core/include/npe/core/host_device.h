// npe/core/host_device.h: one macro for per-item functions shared by the CPU reference and the
// CUDA kernels (NVIDIA Warp's CUDA_CALLABLE): __host__ __device__ under nvcc, plain inline in a
// host compiler.
#pragma once

#if defined(__CUDACC__)
#define NPE_HD __host__ __device__ __forceinline__
#else
#define NPE_HD inline
#endif
// Loop unrolling in device code only (the host compiler decides for itself).
#if defined(__CUDA_ARCH__)
#define NPE_UNROLL _Pragma("unroll")
#else
#define NPE_UNROLL
#endif
