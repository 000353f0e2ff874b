#!/usr/bin/env bash
# The README's latency table: one process per line, 2 threads, 256x256x8, median of 3 after a warm-up.
# Usage: bash scripts/bench_table.sh   (JSON results land in runs/bench/)
# The authors'-format S rows use stand-in files (scripts/foldcheck.py: random weights, their layout).
set -u
uptime
mkdir -p runs/bench
run() { name=$1; shift; python -m qsci bench "$@" --threads 2 --size 256x256x8 --repeats 3 --json runs/bench/$name.json > /dev/null 2>runs/bench/$name.err; echo "$name $(python -c "import json;d=json.load(open('runs/bench/$name.json'));print(d['median_s'],d['backend'],d['weights'],round(d['peak_rss_mb']))" 2>/dev/null)"; }
run s-fp32-cl --model qsci-s-fp32 --backend fp32 --channels-last
run s-bf16 --model qsci-s-fp32 --backend bf16 --channels-last
run s-int8-8bit --model qsci-s-8bit --backend int8
run s-int8-4bit --model qsci-s-4bit --backend int8
run s-int8-3bit --model qsci-s-3bit --backend int8
run s-int8-2bit --model qsci-s-2bit --backend int8
run t-fp32-cl --model qsci-t-fp32 --backend fp32 --channels-last
run t-bf16 --model qsci-t-fp32 --backend bf16 --channels-last
run t-int8-8bit --model qsci-t-8bit --backend int8
run t-int8-4bit --model qsci-t-4bit --backend int8
run t-int8-3bit --model qsci-t-3bit --backend int8
run t-int8-2bit --model qsci-t-2bit --backend int8
run gap-fp32-cl --model qsci-t-gap-fp32 --backend fp32 --channels-last
run gap-bf16 --model qsci-t-gap-fp32 --backend bf16 --channels-last
run gap-int8-8bit --model qsci-t-gap-8bit --backend int8
run gap-int8-4bit --model qsci-t-gap-4bit --backend int8
run gap-int8-3bit --model qsci-t-gap-3bit --backend int8
run gap-int8-2bit --model qsci-t-gap-2bit --backend int8
run t-fakequant-4bit --model qsci-t-4bit --backend fakequant
# the authors' S files (per-channel steps, folded into the weights): synthetic stand-ins in their format
for b in 8 4 3 2; do
  f=runs/bench/authors_s_${b}bit.pth
  [ -f $f ] || python -c "from scripts.foldcheck import make_authors_file; make_authors_file('$f', $b)" 2>/dev/null
  run s-authors-int8-${b}bit --model qsci-s-${b}bit --checkpoint $f --backend int8
done
run s-authors-fakequant-4bit --model qsci-s-4bit --checkpoint runs/bench/authors_s_4bit.pth --backend fakequant
run gap-tv --model gap-tv --backend fp32
uptime
