#!/usr/bin/env bash
# One-shot GPU check (issue 17): on a single-GPU machine with a CUDA torch installed, in under 8 minutes,
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# runs pipeline efficiency (ViT-S/16 and ViT-L/16, `embed` over the bare forward, auto dtype: bf16 on
# CUDA), a cold full-HD view at 20x in this process and through the viewer's worker process (its
# tiles/s), and SAE training throughput; writes OUT_DIR/gpu_check.json (default /tmp/pathsae-gpu).
# Random-init weights (no model hub needed). The project is installed beside the CUDA torch when it is
# not importable yet (that needs a package index; on an offline machine carry a ready environment).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/pathsae-gpu}
WORK=$OUT/work
mkdir -p "$OUT" "$WORK"
PY=${PYTHON:-python3}
if ! "$PY" -c "import napari_pathsae" 2>/dev/null; then
  "$PY" -m venv --system-site-packages "$OUT/venv"  # keeps the machine's CUDA torch
  PY=$OUT/venv/bin/python
  "$PY" -m pip install -q -e . || { echo "gpu_check: cannot install napari-pathsae here (no package index?)" >&2; exit 2; }
fi
start=$(date +%s)
if [[ "${GPU_CHECK_SMOKE:-}" == 1 ]]; then  # CPU, tiny inputs: checks this script, measures nothing
  SUFFIX=_smoke
  for script in pipeline_efficiency viewport sae_training; do
    "$PY" "benchmarks/$script.py" --smoke --work-dir "$WORK" --out "$OUT" $([[ $script == viewport ]] && echo --no-viewer)
  done
else
  SUFFIX=
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA GPU')"
  "$PY" benchmarks/pipeline_efficiency.py --encoders vit_small_patch16_224 vit_large_patch16_224 --side 12288 \
    --batch-size 128 --device cuda --work-dir "$WORK" --out "$OUT"
  "$PY" benchmarks/viewport.py --no-viewer --work-dir "$WORK" --out "$OUT"
  "$PY" benchmarks/sae_training.py --train-embeddings 200000 --encode-embeddings 200000 --work-dir "$WORK" --out "$OUT"
fi
"$PY" - "$OUT" "$(( $(date +%s) - start ))" "$SUFFIX" <<'PY'
import json, sys
from pathlib import Path

out, seconds, suffix = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
names = ("pipeline_efficiency", "viewport", "sae_training")
parts = {name: json.loads((out / f"{name}{suffix}.json").read_text()) for name in names}
runs = parts["pipeline_efficiency"]["runs"]
view = parts["viewport"]
check = {
    "machine": view["machine"],
    "seconds": seconds,
    "pipeline_efficiency": {r["encoder"]: {k: r.get(k) for k in ("dtype", "batch_size", "embed_tiles_per_s_in_run",
                            "bare_tiles_per_s_before_after", "efficiency_in_run", "efficiency_whole_process")} for r in runs},
    "cold_fullhd_20x_s": {"in_process": [v["all_s"] for v in view["cold"]],
                          "worker_process": [v["all_s"] for v in view["cold_worker_process"]]},
    "worker_tiles_per_s": round(sum(v["tiles"] for v in view["cold_worker_process"])
                                / sum(v["all_s"] for v in view["cold_worker_process"]), 1),
    "sae_training": parts["sae_training"]["training"],
}
(out / "gpu_check.json").write_text(json.dumps(check, indent=2) + "\n")
print(json.dumps(check, indent=2))
PY
