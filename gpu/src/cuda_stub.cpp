// Built instead of cuda_engine.cu when no CUDA compiler was found at configure time: the CPU
// reference serves, and every CUDA entry point says why it cannot run.
#include "npe/core/error.h"
#include "npe/gpu/diffsim.h"
#include "npe/gpu/engine.h"

namespace npe::gpu {
namespace {
constexpr const char* kWhy = "npe was built without CUDA (no nvcc found when CMake configured it)";
[[noreturn]] void unavailable() { throw Error(kWhy); }
}  // namespace

bool cuda_available(std::string* why) {
  if (why) *why = kWhy;
  return false;
}
std::string cuda_device_name() { unavailable(); }
double cuda_copy_bandwidth() { unavailable(); }

template <class T>
struct CudaWorld<T>::Impl {};
template <class T>
CudaWorld<T>::CudaWorld(const WorldSpec&) {
  unavailable();
}
template <class T>
CudaWorld<T>::~CudaWorld() = default;
template <class T>
const WorldSpec& CudaWorld<T>::spec() const {
  unavailable();
}
template <class T>
void CudaWorld<T>::set_state(const WorldState<T>&) {
  unavailable();
}
template <class T>
void CudaWorld<T>::set_masses(const std::vector<double>&) {
  unavailable();
}
template <class T>
WorldState<T> CudaWorld<T>::state() const {
  unavailable();
}
template <class T>
void CudaWorld<T>::advance(int, const Recorder<T>&, int) {
  unavailable();
}
template <class T>
void CudaWorld<T>::record(const Recorder<T>&, int) {
  unavailable();
}
template <class T>
std::vector<std::pair<int64_t, int64_t>> CudaWorld<T>::contact_pairs(BroadPhase) {
  unavailable();
}
template <class T>
std::vector<double> CudaWorld<T>::time_advance(const WorldState<T>&, int, const Recorder<T>&, int, int) {
  unavailable();
}
template <class T>
void CudaWorld<T>::synchronize() const {
  unavailable();
}
template <class T>
void* CudaWorld<T>::stream() const {
  unavailable();
}
template class CudaWorld<float>;
template class CudaWorld<double>;

DeviceBuffer::DeviceBuffer(size_t) { unavailable(); }
DeviceBuffer::~DeviceBuffer() = default;
void DeviceBuffer::copy_to_host_async(void*, size_t, void*) const { unavailable(); }
void DeviceBuffer::fill_nan() { unavailable(); }
void DeviceBuffer::copy_from_host(const void*, size_t, void*) { unavailable(); }
void synchronize_stream(void*) { unavailable(); }
PinnedBuffer::PinnedBuffer(size_t) { unavailable(); }
PinnedBuffer::~PinnedBuffer() = default;

template <class T>
void dashpot_cuda(const T*, T*, T*, int64_t, double, void*) {
  unavailable();
}
template void dashpot_cuda(const float*, float*, float*, int64_t, double, void*);
template void dashpot_cuda(const double*, double*, double*, int64_t, double, void*);
template <class T>
void diff_forward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<T>&, T*, T*, uint32_t*, void*) {
  unavailable();
}
template <class T>
void diff_backward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<T>&, const T*, const uint32_t*, const T*,
                        const DiffGrads<T>&, T*, void*) {
  unavailable();
}
template void diff_forward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, float*, float*,
                                uint32_t*, void*);
template void diff_forward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, double*, double*,
                                uint32_t*, void*);
template void diff_backward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, const float*,
                                 const uint32_t*, const float*, const DiffGrads<float>&, float*, void*);
template void diff_backward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, const double*,
                                 const uint32_t*, const double*, const DiffGrads<double>&, double*, void*);

}  // namespace npe::gpu
