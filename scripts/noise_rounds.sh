#!/usr/bin/env bash
# Adversarial noise rounds (AT4rAMT) from the bundled model, and the noise sweep of issue 16 on real audio.
#
#   bash scripts/noise_rounds.sh [all|data|train|sweep|report]     # default: all; resumable
#
# 1. data: 60 ASAP performances rendered as 20 s piano excerpts (MuseScore General / the default soundfont,
#    program 0), re-split by piece for training (80/10/10: validation chooses the checkpoint and thresholds).
# 2. train: R noise rounds of N steps each from a copy of MODEL (one clean step first: amt finetune needs one),
#    each round at the noise level (pink by default) that raises the loss by 10-30 % (searched anew per round).
# 3. sweep: the starting model and the noise-trained one on real MAPS Disklavier recordings, clean and
#    with white and pink noise at 30, 20, 10, 5, 0 and -5 dB SNR (amt evaluate --snr; same noise for both).
#    By default on the four shortest of the 11 (4.5 min: chpn-p14, grieg_kobold, both scn15_11 takes;
#    linked into $OUT/maps-short in the MAPS layout), which is what the shared 2-core machine allowed;
#    SWEEP_ALL=1 sweeps all 11 (29 min of audio, 14 passes per colour).
# 2b. the same rounds twice, same data and steps: plain BCE and the pitch-balanced loss (ARMS="bce pb").
# Writes $OUT (default work/noise): base/ (+ base.sha256), rounds-<arm>/ (the runs; release/, linked as
# noise-rounds-<arm>), sweep-<colour>.json,
# table.md, and the F1-vs-SNR plots $PLOTS/f1_vs_snr_<colour>.png (default docs/noise/).
# Knobs: MODEL (synthetic), ARMS ("bce pb"), ROUNDS (2), ROUND_STEPS (60), TARGET (0.1:0.3, the loss band), KIND (pink), LR (1e-3: the clean step; rounds
# run at a tenth), CROP_S (5), BATCH (8), SNRS (30,20,10,5,0,-5), COLOURS ("pink white").
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
AMT=.venv/bin/amt
DATA=${AMT_DATA:-../shared/data}
OUT=${OUT:-work/noise}
PLOTS=${PLOTS:-docs/noise}
MODEL=${MODEL:-synthetic}
TRAIN=${TRAIN:-work/data/asap-piano-60}
SNRS=${SNRS:-30,20,10,5,0,-5}
ROUNDS=${ROUNDS:-2}
ROUND_STEPS=${ROUND_STEPS:-60}
ARMS=${ARMS:-bce pb}
WHAT=${1:-all}
mkdir -p "$OUT"

if [ ! -f "$OUT/base/model.safetensors" ]; then
  cp -r "$(.venv/bin/python -c "import sys; from amtcli.zoo import resolve; print(resolve(sys.argv[1]))" "$MODEL")" "$OUT/base"
  sha256sum "$OUT/base/model.safetensors" | cut -d' ' -f1 > "$OUT/base.sha256"
fi
echo "starting model: $MODEL, weights sha256 $(cat "$OUT/base.sha256")"

if [ "$WHAT" = all ] || [ "$WHAT" = data ]; then
  [ -f "$TRAIN/manifest.jsonl" ] || $AMT synth "$DATA/midi/asap" -o "$TRAIN" --split-by folder --programs 0 \
    --excerpt-s 20 --features --max-files 60 --workers 1
fi
if [ "$WHAT" = all ] || [ "$WHAT" = train ]; then
  for arm in $ARMS; do
    case $arm in bce) LOSS=--no-pitch-balanced ;; pb) LOSS=--pitch-balanced ;; *) echo "unknown arm $arm (bce or pb)" >&2; exit 2 ;; esac
    RUN=$OUT/rounds-$arm
    RESUME=(); [ -f "$RUN/checkpoints/last.pt" ] && RESUME=(--resume)
    [ -f "$RUN/finetune.json" ] || $AMT finetune --from "$OUT/base" --to synthetic --root "$TRAIN" --split-by piece --out "$RUN" \
      --steps 1 --lr "${LR:-1e-3}" --noise-rounds "$ROUNDS" --noise-steps "$ROUND_STEPS" $LOSS \
      --noise-kind "${KIND:-pink}" --noise-target "${TARGET:-0.1:0.3}" --crop-s "${CROP_S:-5}" --batch-size "${BATCH:-8}" --val-every 25 --patience 0 \
      --device cpu "${RESUME[@]}"
    # the sweep names each system by its folder: noise-rounds-<arm>
    ln -sfn "rounds-$arm/release" "$OUT/noise-rounds-$arm"
  done
fi
if [ "$WHAT" = all ] || [ "$WHAT" = sweep ]; then
  mkdir -p "$PLOTS"
  SWEEP_ROOT="$DATA/real/maps"
  if [ "${SWEEP_ALL:-0}" != 1 ]; then
    SWEEP_ROOT="$OUT/maps-short"
    for id in ENSTDkAm/MUS/MAPS_MUS-chpn-p14_ENSTDkAm ENSTDkAm/MUS/MAPS_MUS-grieg_kobold_ENSTDkAm \
      ENSTDkAm/MUS/MAPS_MUS-scn15_11_ENSTDkAm ENSTDkCl/MUS/MAPS_MUS-scn15_11_ENSTDkCl; do
      mkdir -p "$SWEEP_ROOT/$(dirname "$id")"
      for ext in wav txt; do ln -sf "$(realpath "$DATA/real/maps/$id.$ext")" "$SWEEP_ROOT/$id.$ext"; done
    done
  fi
  ARM_MODELS=(); for arm in $ARMS; do ARM_MODELS+=(-m "$OUT/noise-rounds-$arm"); done
  for colour in ${COLOURS:-pink white}; do
    [ -f "$OUT/sweep-$colour.json" ] || $AMT evaluate -d maps --root "$SWEEP_ROOT" --split all \
      -m "$OUT/base" "${ARM_MODELS[@]}" --snr "$SNRS" --noise "$colour" --device cpu \
      --json "$OUT/sweep-$colour.json" --plot "$PLOTS/f1_vs_snr_$colour.png" --overwrite
  done
fi
if [ "$WHAT" = all ] || [ "$WHAT" = report ]; then
  .venv/bin/python - "$OUT" "$MODEL" <<'EOF' | tee "$OUT/table.md"
import json, sys
from pathlib import Path

out, model = Path(sys.argv[1]), sys.argv[2]
names = {"base": f"{model} (base)", "noise-rounds-bce": "noise rounds, BCE", "noise-rounds-pb": "noise rounds, pitch-balanced"}
sweeps = sorted(out.glob("sweep-*.json"))
if not sweeps:
    sys.exit("no sweep yet")
doc0 = json.loads(sweeps[0].read_text())
print(f"MAPS Disklavier, {doc0['dataset']['n_items']} recordings ({doc0['dataset']['root']}), note F1 (micro) by SNR; starting weights sha256 "
      f"{(out / 'base.sha256').read_text().strip()[:12]}.\n")
for path in sweeps:
    doc = json.loads(path.read_text())
    table: dict = {}
    for run in doc["runs"]:
        snr = run["snr_db"]
        table.setdefault(run["system"], {})[snr] = run["aggregate"]["micro"]["note"]["f1"]
    snrs = [None] + sorted({s for row in table.values() for s in row if s is not None}, reverse=True)
    colour = path.stem.split("-", 1)[1]
    print(f"| {colour} noise | " + " | ".join("clean" if s is None else f"{s:g} dB" for s in snrs) + " | 0 dB / clean |")
    print("|---" * (len(snrs) + 2) + "|")
    for system, row in table.items():
        ratio = row.get(0.0, float("nan")) / row[None]
        print(f"| {names.get(system, system)} | " + " | ".join(f"{row[s]:.3f}" for s in snrs) + f" | {ratio:.3f} |")
    print()
EOF
fi
