#!/usr/bin/env bash
# `hfaid plan` on a GPU (issue 22): a score run on cuda records the GPU's name, and the plan for
# that GPU kind then takes the catalog's own rate instead of the shipped table. One lent-GPU call
# of about 3 minutes: bash benchmarks/gpu_plan_check.sh. Results go to $OUT (or /tmp/gpu_plan).
#   plan_table.json   `hfaid plan --pool 1000000 --gpu h100` from the shipped rates;
#   plan_catalog.json the same after scoring 512 2-4 MP photos with niqe,brisque on cuda: the
#                     score-quality row should read "catalog, 1 run(s)".
set -u
out=${OUT:-/tmp/gpu_plan}
mkdir -p "$out"
export PYTHONPATH=$PWD
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
work=$(mktemp -d)
printf '[[step]]\ncommand = "score"\nmetrics = ["niqe", "brisque"]\nstage_input = "ingest"\n' \
  > "$work/recipe.toml"
python3 benchmarks/photo_pool.py "$work/pool" --count 512 >/dev/null
python3 -m hfaid plan --recipe "$work/recipe.toml" --pool 1000000 --gpu h100 --json \
  --catalog "$work/c.duckdb" > "$out/plan_table.json"
python3 -m hfaid ingest "$work/pool" --catalog "$work/c.duckdb" > /dev/null
timeout 240 python3 -m hfaid score --metrics niqe,brisque --stage-input ingest --device cuda \
  --json --catalog "$work/c.duckdb" | tee "$out/score.json"
python3 -m hfaid plan --recipe "$work/recipe.toml" --pool 1000000 --json \
  --catalog "$work/c.duckdb" | tee "$out/plan_catalog.json"
