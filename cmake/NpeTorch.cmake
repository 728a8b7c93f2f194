# Finds libtorch from the pinned PyPI wheel (torch==2.11.0, a CUDA build) and defines the target
# `torch`.
#
# The wheel's TorchConfig.cmake requires a CUDA toolkit (nvcc) because the wheel is a CUDA build.
# npe keeps CUDA optional: when no CUDA compiler is found, the target is made here from the
# wheel's own files (headers, libtorch/libtorch_cpu/libc10). At run time libtorch_cuda.so finds
# the CUDA runtime in the wheel's nvidia-* dependencies through its RPATH, so CPU training works
# on a machine without a toolkit or GPU.
# libtorch's umbrella header <torch/torch.h> takes about 20 s to parse (GCC -O3, 2-core AMD EPYC)
# and nearly every file of the libtorch-based targets includes it through npe's public headers.
# Those targets precompile it once (the single-file tools reuse npe-train's): npe/src/model.cpp,
# for one, then compiles in 28 s instead of 37 s. CI builds npe three times (main, sanitizers,
# fuzzers) on two cores. NPE_PCH=OFF turns it off (to check that every file includes what it uses).
option(NPE_PCH "Precompile <torch/torch.h> for the targets that include it" ON)
function(npe_torch_pch target)
  if(NPE_PCH)
    target_precompile_headers(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:<torch/torch.h$<ANGLE-R>>")
  endif()
endfunction()
# `target` reuses the precompiled header of `from` (same compiler flags; GCC only: clang refuses
# a header made with other -D definitions, and the clang builds (fuzzers) build no tools).
function(npe_torch_pch_reuse target from)
  if(NPE_PCH AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_precompile_headers(${target} REUSE_FROM ${from})
  endif()
endfunction()

include(CheckLanguage)
check_language(CUDA)
if(CMAKE_CUDA_COMPILER AND NOT NPE_FORCE_NO_CUDA)
  # Torch's CMake appends -gencode flags for every architecture in TORCH_CUDA_ARCH_LIST (all of
  # them by default) to CMAKE_CUDA_FLAGS; npe's kernels name their own (NPE_CUDA_ARCHITECTURES),
  # so the flags are restored afterwards.
  if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(ENV{TORCH_CUDA_ARCH_LIST} "9.0a")
  endif()
  set(_npe_cuda_flags "${CMAKE_CUDA_FLAGS}")
  find_package(Torch REQUIRED)
  set(CMAKE_CUDA_FLAGS "${_npe_cuda_flags}")
  set(NPE_HAVE_CUDA ON)
  return()
endif()
set(NPE_HAVE_CUDA OFF)
message(STATUS "npe: no CUDA compiler found: building without CUDA code (the GPU engine runs its CPU reference; libtorch used without the toolkit)")
find_path(NPE_TORCH_ROOT NAMES include/torch/torch.h include/torch/csrc/api/include/torch/torch.h
          PATHS ${CMAKE_PREFIX_PATH} PATH_SUFFIXES ../.. .. torch NO_DEFAULT_PATH REQUIRED)  # torch: pip's site-packages
get_filename_component(NPE_TORCH_ROOT "${NPE_TORCH_ROOT}" ABSOLUTE)
set(_tl "${NPE_TORCH_ROOT}/lib")
foreach(lib torch torch_cpu c10)
  if(NOT EXISTS "${_tl}/lib${lib}.so")
    message(FATAL_ERROR "npe: libtorch library ${_tl}/lib${lib}.so not found (is torch installed in .venv?)")
  endif()
endforeach()
add_library(torch INTERFACE IMPORTED)
set_target_properties(torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${NPE_TORCH_ROOT}/include;${NPE_TORCH_ROOT}/include/torch/csrc/api/include"
  INTERFACE_COMPILE_OPTIONS "-D_GLIBCXX_USE_CXX11_ABI=1"
  INTERFACE_LINK_LIBRARIES "${_tl}/libtorch.so;${_tl}/libtorch_cpu.so;${_tl}/libc10.so"
  INTERFACE_LINK_OPTIONS "-Wl,-rpath,${_tl};-Wl,-rpath-link,${_tl}")
set(TORCH_LIBRARIES torch)

