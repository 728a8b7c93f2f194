# Sourced by the device scripts (device_control.sh, device_experiments.sh): starts CUDA MPS, so
# that several processes' kernels share the one GPU at once instead of taking turns, and samples
# the GPU's utilisation every 5 s into $1/smi.csv; both stop when the sourcing script exits.
# NPE_MPS=0: no MPS. Writes the GPU's name and whether MPS runs to $1/gpu.txt.
npe_mps_dir="$1" npe_smi="" npe_mps=0
npe_mps_cleanup() {
  [ -n "$npe_smi" ] && kill "$npe_smi" 2> /dev/null
  [ "$npe_mps" = 1 ] && echo quit | nvidia-cuda-mps-control
}
trap npe_mps_cleanup EXIT
if [ "${NPE_MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control > /dev/null &&
  nvidia-cuda-mps-control -d > "$npe_mps_dir/mps.log" 2>&1; then
  npe_mps=1
  if python3 -c "import torch; torch.zeros(1, device='cuda')" >> "$npe_mps_dir/mps.log" 2>&1; then
    echo "MPS on" | tee -a "$npe_mps_dir/gpu.txt"
  else
    echo quit | nvidia-cuda-mps-control
    npe_mps=0
    echo "MPS failed: $(tail -1 "$npe_mps_dir/mps.log")" | tee -a "$npe_mps_dir/gpu.txt"
  fi
fi
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | head -1 | tee -a "$npe_mps_dir/gpu.txt"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 5 > "$npe_mps_dir/smi.csv" 2>&1 &
npe_smi=$!
