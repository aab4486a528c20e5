#!/usr/bin/env bash
# Every check that needs a CUDA GPU, as one command for a lent GPU machine (issues 17 and 18).
#
#   benchmarks/gpu_checks.sh OUT_DIR [VNN_BENCH_DIR VNN_RESULTS_DIR]
#
# Runs from the repository root with the machine's own python3 (its PyTorch sees the GPU) and
# `src` on PYTHONPATH; wheels in .whl/ (pydantic and its three needs, absent from that image)
# are installed to /tmp/site first. In order, each step bounded so that the whole fits one
# 10-minute command, each step's output in OUT_DIR:
#   1. tests/certify/test_cuda.py (the verifier on the GPU gives the CPU's answers; float32
#      bounds stay sound with TF32 about) and the GPU engine script's test;      cuda_tests.log
#   2. benchmarks/gpu_engine.py: fit against a bare loop, TFLOP/s against the card's peak;
#                                                                               gpu_engine.log
#   3. given the VNN-COMP folders (a copy with the instances wanted in instances.csv):
#      benchmarks/vnncomp.py on mnist_fc with `stalwart verify --device cuda`, 13 instances at
#      a time, the competition's timeouts; rows as they finish.      vnncomp.log, mnist_fc.csv
#
# Prepared here, beside the checkout (both folders git-excluded: `/.whl/` and `/.vnn/` in
# .git/info/exclude), then named in the device call's `carry`:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic_core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5
#   .vnn/benchmarks/mnist_fc (onnx/, vnnlib/, an instances.csv of the instances wanted) and
#   .vnn/results/<tool>/mnist_fc/ from vnncomp2022_results, then
#   run: benchmarks/gpu_checks.sh $OUT .vnn/benchmarks .vnn/results   (carry .whl and .vnn)
set -uo pipefail
out=${1:?usage: benchmarks/gpu_checks.sh OUT_DIR [VNN_BENCH_DIR VNN_RESULTS_DIR]}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
  | tee -a "$out/gpu.txt"

timeout 100 python3 -m pytest -q -p no:cacheprovider tests/certify/test_cuda.py \
  tests/engine/test_gpu_engine_script.py 2>&1 | tee "$out/cuda_tests.log"
timeout 110 python3 benchmarks/gpu_engine.py 2>&1 | tee "$out/gpu_engine.log"
if [ $# -ge 3 ]; then
  timeout 330 python3 benchmarks/vnncomp.py "$2" "$3" --categories mnist_fc --jobs 13 \
    --verify-args "--device cuda" --out "$out/mnist_fc.csv" 2>&1 | tee "$out/vnncomp.log"
fi
