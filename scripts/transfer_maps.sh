#!/usr/bin/env bash
# The transfer table of issue 16 on real audio: the synthetic-only model zero-shot on the MAPS Disklavier
# recordings, the same model fine-tuned on MAPS, and the same architecture trained on MAPS alone from a
# random init with the same steps. K-fold cross-validation by piece (both takes of a piece in one fold):
# every recording is scored once, by models that never trained on it.
#
#   bash scripts/transfer_maps.sh [all|finetuned|kept|scratch|report]     # default: all; resumable
#
# Writes $OUT (default work/transfer): base/ (a copy of the starting model, so that the folds all start
# from the same weights even if models/synthetic changes meanwhile; its sha256 in base.sha256),
# finetuned/, kept/ (the same fine-tuning keeping the starting model's decoding thresholds instead of choosing
# them on the one or two validation recordings of a fold: --keep-thresholds) and scratch/ (fold-<i>/ run folders with release/ and finetune.json, folds.json pooled),
# table.md, and the validation-F1-vs-step plot $PLOT (default docs/transfer/f1_vs_step.png).
# Knobs (environment): MODEL (synthetic), FOLDS (3), STEPS (150), CROP_S (5), BATCH (8), VAL_EVERY (25),
# LR_FT (3e-4: fine-tuning), LR_SCRATCH (1e-3: the synthetic model's own training rate), SEED (0).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
AMT=.venv/bin/amt
DATA=${AMT_DATA:-../shared/data}
MAPS=$DATA/real/maps
OUT=${OUT:-work/transfer}
PLOT=${PLOT:-docs/transfer/f1_vs_step.png}
MODEL=${MODEL:-synthetic}
FOLDS=${FOLDS:-3}
STEPS=${STEPS:-150}
COMMON=(--to maps --root "$MAPS" --folds "$FOLDS" --split-seed "${SEED:-0}" --seed "${SEED:-0}" --steps "$STEPS"
  --crop-s "${CROP_S:-5}" --batch-size "${BATCH:-8}" --val-every "${VAL_EVERY:-25}" --patience 0 --device cpu --resume)
WHAT=${1:-all}
mkdir -p "$OUT"

if [ ! -f "$OUT/base/model.safetensors" ]; then
  cp -r "$(.venv/bin/python -c "import sys; from amtcli.zoo import resolve; print(resolve(sys.argv[1]))" "$MODEL")" "$OUT/base"
  sha256sum "$OUT/base/model.safetensors" | cut -d' ' -f1 > "$OUT/base.sha256"
fi
echo "starting model: $MODEL, weights sha256 $(cat "$OUT/base.sha256")"

if [ "$WHAT" = all ] || [ "$WHAT" = finetuned ]; then
  $AMT finetune --from "$OUT/base" --out "$OUT/finetuned" --lr "${LR_FT:-3e-4}" "${COMMON[@]}"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = kept ]; then
  $AMT finetune --from "$OUT/base" --out "$OUT/kept" --lr "${LR_FT:-3e-4}" --keep-thresholds "${COMMON[@]}"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = scratch ]; then
  $AMT finetune --from scratch --like "$OUT/base" --out "$OUT/scratch" --lr "${LR_SCRATCH:-1e-3}" "${COMMON[@]}"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = report ]; then
  mkdir -p "$(dirname "$PLOT")"
  # the curves of the folds finished in the fine-tuned and scratch arms (all of them after a full run)
  CURVES=()
  for ((i = 0; i < FOLDS; i++)); do
    if [ -f "$OUT/finetuned/fold-$i/finetune.json" ] && [ -f "$OUT/scratch/fold-$i/finetune.json" ]; then
      CURVES+=(--compare "$OUT/finetuned/fold-$i" --compare "$OUT/scratch/fold-$i")
    fi
  done
  $AMT finetune "${CURVES[@]}" --plot "$PLOT" --overwrite
  .venv/bin/python - "$OUT" "$MODEL" "$FOLDS" <<'EOF' | tee "$OUT/table.md"
import json, sys
from pathlib import Path

from amtcli.training.finetune import pool_counts

out, model, k = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
# the folds every arm has finished (all of them after a full run; fewer if it was stopped early)
done = [i for i in range(k) if all((out / arm / f"fold-{i}" / "finetune.json").is_file() for arm in ("finetuned", "kept", "scratch"))]
if not done:
    sys.exit("no fold finished in every arm yet")
ft = [json.loads((out / "finetuned" / f"fold-{i}" / "finetune.json").read_text()) for i in done]
sc = [json.loads((out / "scratch" / f"fold-{i}" / "finetune.json").read_text()) for i in done]
kp = [json.loads((out / "kept" / f"fold-{i}" / "finetune.json").read_text()) for i in done]
sha = (out / "base.sha256").read_text().strip()
rows = [
    (f"zero-shot: {model} (synthetic audio only)", pool_counts([r["counts"]["zero_shot"] for r in ft])),
    (f"{model} -> MAPS, fine-tuned, thresholds chosen on the fold's validation", pool_counts([r["counts"]["fine_tuned"] for r in ft])),
    (f"{model} -> MAPS, fine-tuned, {model}'s thresholds kept", pool_counts([r["counts"]["fine_tuned"] for r in kp])),
    ("MAPS only, from a random init (same steps)", pool_counts([r["counts"]["fine_tuned"] for r in sc])),
]
n = sum(r["test_items"] for r in ft)
which = "all folds" if len(done) == k else f"only fold(s) {', '.join(map(str, done))} of 0..{k - 1}: the others were not run"
print(f"MAPS Disklavier, {n} held-out recordings ({which}; {k} folds by piece), each scored by the models of the "
      f"fold that held it out; micro over all notes. Starting weights sha256 {sha[:12]}.\n")
print("| system | frame F1 | note P | note R | note F1 | note+offset F1 |")
print("|---|---|---|---|---|---|")
for name, s in rows:
    print(f"| {name} | " + " | ".join(f"{s[key]:.3f}" for key in
          ("frame_f1", "note_precision", "note_recall", "note_f1", "note_offset_f1")) + " |")
print("\n| fold | held-out recordings | train / validation | best step (fine-tuned, kept, scratch) | note F1 zero-shot | fine-tuned | thresholds kept | scratch |")
print("|---|---|---|---|---|---|---|---|")
for a, b, d in zip(ft, sc, kp):
    c = a["split_counts"]
    print(f"| {a['split']['fold']} | {', '.join(i.replace('MAPS_MUS-', '') for i in a['test_ids'])} | "
          f"{c['train']} / {c['validation']} | {a['best_step']}, {d['best_step']}, {b['best_step']} | {a['zero_shot']['note_f1']:.3f} | "
          f"{a['fine_tuned']['note_f1']:.3f} | {d['fine_tuned']['note_f1']:.3f} | {b['fine_tuned']['note_f1']:.3f} |")
EOF
fi
