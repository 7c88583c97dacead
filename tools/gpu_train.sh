#!/usr/bin/env bash
# Train the attribute net and the segmentation nets (MaskNet + Table 4 U-Net) side by side on one
# GPU machine, from the caches in .data/attr and .data/seg (built here by
# masksegx.training.attr_cache and masksegx.training.seg_cache; see the model cards).
#   tools/gpu_train.sh OUTDIR [SECONDS]
# Each trainer stops itself within SECONDS (default 240) and exports ONNX into OUTDIR/<name>/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/gpu_train.sh OUTDIR [SECONDS]}
limit=${2:-240}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1
MASKSEGX_BUILD_DIR=/tmp/masksegx-build MASKSEGX_BUILD_JOBS=16 tools/dev-build > "$out/build.log" 2>&1 \
  || { echo "build failed"; tail -20 "$out/build.log"; exit 1; }
export PYTHONPATH=python PYTHONUNBUFFERED=1
python3 -m masksegx.training.train_attributes --cache .data/attr --out "$out/attr" \
  --device cuda --time-limit "$limit" --workers 7 > "$out/attr.log" 2>&1 &
attr=$!
python3 -m masksegx.training.train_segmentation --cache .data/seg --out "$out/seg" \
  --device cuda --time-limit "$limit" --workers 7 > "$out/seg.log" 2>&1 &
seg=$!
wait $attr; attr_rc=$?
wait $seg; seg_rc=$?
echo "attr rc=$attr_rc seg rc=$seg_rc"
tail -5 "$out/attr.log" "$out/seg.log"
[ $attr_rc -eq 0 ] && [ $seg_rc -eq 0 ]
