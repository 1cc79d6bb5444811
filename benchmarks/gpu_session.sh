#!/usr/bin/env bash
# The GPU measurements issue 4 still lacks, in one lent-GPU call of under 10 minutes.
#
# Run from the repository root on the GPU machine, with the wheels it lacks in .whl/ (or
# WHEELS=dir): bash benchmarks/gpu_session.sh [2|3]. Results go to $OUT (or /tmp/gpu_session).
# Part 1 (no argument):
#   decode.txt     bench_decode.py --device cuda with 8 and 15 workers: the rate at which the
#                  host decodes, pins and joins 1080x800 JPEGs on the GPU with no model (the
#                  ceiling of a fast metric's runner), pinned vs not, and worker CPU per image;
#   fast.txt       runner vs model-only at shards of 1024 for the fast metrics and MANIQA
#                  (e2e / model-only, goal >= 0.9), with the float32 score heads, and where the
#                  model's process spent each run (waiting for decoded images, launching,
#                  waiting for the device);
#   sharing.txt    BRISQUE and NIQE runners with decode buffers shared by descriptor vs by name
#                  (the runner's way), 8 workers: images/s and waiting for decoded images;
#   gpu_tests.txt  the `gpu` tests of the scorers and the score job;
#   clip_prompts.txt  CLIP-IQA(+) with prompt features encoded once vs on every batch.
# Part 2 (argument 2), a second call:
#   batch_sizes.txt  the default funnel's metrics, each at its own batch vs all at MANIQA's 4;
#   shape_order.txt  CLIP-IQA on a 16-size pool, pending list in shape vs image_id order;
#   classical.txt  NIQE and BRISQUE as built vs with pyiqa's pieces put back, batch 1.
# Part 3 (argument 3), a third call:
#   long_tail_*.txt  NIQE, MUSIQ and MANIQA on a pool of distinct sizes: 96-px cells / mixed
#                    sizes vs equal shapes only.
set -u
out=${OUT:-/tmp/gpu_session}
wheels=${WHEELS:-.whl}
mkdir -p "$out"
export PYTHONPATH=$PWD
if compgen -G "$wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-deps --no-index "$wheels"/*.whl >/dev/null 2>&1
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
if [ "${1:-1}" = 2 ]; then
  timeout 250 python3 benchmarks/bench_batch_sizes.py --device cuda --metrics \
    maniqa,clipiqa,niqe --batch-sizes 0,4 --images 256 --size 1080x800 --rounds 3 2>&1 \
    | tee "$out/batch_sizes.txt"
  timeout 250 python3 benchmarks/bench_shape_order.py --device cuda --batch 16 --images 512 \
    --shard 256 --rounds 3 --synthetic 0 2>&1 | tee "$out/shape_order.txt"
  timeout 60 python3 benchmarks/bench_classical.py --device cuda --images 32 --rounds 3 \
    2>&1 | tee "$out/classical.txt"
  exit 0
fi
if [ "${1:-1}" = 3 ]; then
  for run in niqe:1024 musiq:1024 maniqa:256; do
    metric=${run%%:*}
    timeout 170 python3 benchmarks/bench_long_tail.py --metric "$metric" --device cuda \
      --images "${run##*:}" --shard 1024 --batch 16 --rounds 2 2>&1 \
      | tee "$out/long_tail_$metric.txt"
  done
  exit 0
fi
timeout 100 python3 benchmarks/bench_decode.py --device cuda --workers 8,15 --rounds 2 2>&1 \
  | tee "$out/decode.txt"
timeout 90 python3 benchmarks/bench_buffer_sharing.py --device cuda --workers 8 --images 384 \
  --size 1080x800 --rounds 2 --metrics brisque,niqe 2>&1 | tee "$out/sharing.txt"
timeout 300 python3 benchmarks/bench_scorers_gpu.py --random --images 1024 --shard 1024 \
  --no-batch1 --pyiqa-images 0 --metrics clipiqa,clipiqa+,brisque,maniqa \
  --json "$out/fast.json" 2>&1 | tee "$out/fast.txt"
timeout 130 python3 -m pytest -q -m gpu -p no:cacheprovider -W ignore \
  tests/test_scorers.py tests/test_score_job.py 2>&1 | tee "$out/gpu_tests.txt"
timeout 30 python3 benchmarks/bench_clip_prompts.py --device cuda --batch 16 --rounds 3 2>&1 \
  | tee "$out/clip_prompts.txt"
