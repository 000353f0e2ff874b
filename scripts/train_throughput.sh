#!/usr/bin/env bash
# Training throughput of the warm-start family for the choices that matter on a CPU
# (training/README.md, "Throughput"). One process per line; run it on a quiet machine
# (pause a training job with kill -STOP <pid>, resume with kill -CONT <pid>).
set -euo pipefail
cd "$(dirname "$0")/.."
b() { python -m training.bench --preset t --family gap --steps "${STEPS:-4}" --warmup 1 "$@"; }
uptime
b --crop 64 --batch 4 --threads 1
b --crop 64 --batch 4 --threads 2
b --crop 64 --batch 4 --threads 2 --channels-last
b --crop 64 --batch 4 --threads 2 --amp bf16
b --crop 64 --batch 8 --threads 2
b --crop 48 --batch 4 --threads 2
b --crop 96 --batch 4 --threads 2
b --crop 64 --batch 4 --threads 2 --bits 4
python -m training.bench --preset t --family gap --crop 64 --batch 4 --steps 1 --warmup 0 --threads 1 --data --source builtin | tail -1
python -m training.bench --preset t --crop 64 --batch 4 --steps 1 --warmup 0 --threads 1 --data --source builtin | tail -1
uptime
