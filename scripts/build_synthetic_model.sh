#!/usr/bin/env bash
# Rebuild the bundled `synthetic` model from scratch: data, training, export, validation suite.
# Everything runs on the CPU; expect several hours on 2 cores (the figures in models/synthetic/README.md
# say how long each step took here). Needs ../shared/data (or AMT_DATA) with midi/asap, midi/pop909,
# midi/nottingham, and the Debian soundfonts that scripts/setup.sh installs.
#
#   bash scripts/build_synthetic_model.sh            # all steps; each step resumes where it stopped
#   STEPS=6000 bash scripts/build_synthetic_model.sh # a longer schedule
set -euo pipefail
cd "$(dirname "$0")/.."
AMT=.venv/bin/amt
DATA=${AMT_DATA:-../shared/data}
MIDI=$DATA/midi
WORK=${WORK:-work}
STEPS=${STEPS:-4500}
SF2=/usr/share/sounds/sf2
TRAIN_SF="--soundfont $SF2/FluidR3_GM.sf2 --soundfont $SF2/TimGM6mb.sf2"
HELD_OUT_SF=/usr/share/sounds/sf3/MuseScore_General.sf3   # never used for training

# 1. Training data: performed piano (ASAP, split by piece folder), pop arrangements and folk tunes on
#    pianos, guitars and other GM programs; 20 s excerpts, default augmentation, cached features.
#    (v1 was trained on the first 408 ASAP items of the seeded file order: the run was stopped there
#    to leave time for training; --max-files 408 takes the same files.)
$AMT synth "$MIDI/asap" -o "$WORK/data/asap-piano" --split-by folder --programs 0,1,2,4 $TRAIN_SF \
  --excerpt-s 20 --features --workers 2 --seed 1 --max-files "${ASAP_FILES:-408}"
$AMT synth "$MIDI/pop909" -o "$WORK/data/pop-mixed" --programs 24,25,0,26,27,46 $TRAIN_SF \
  --excerpt-s 20 --features --workers 2 --seed 2 --max-files 250
$AMT synth "$MIDI/nottingham" -o "$WORK/data/folk-mixed" --programs 24,25,40,73,0 $TRAIN_SF \
  --excerpt-s 20 --features --workers 2 --seed 3 --max-files 120

# 2. Training (resumable: rerunning continues the run), pitch-balanced loss, thresholds calibrated on
#    the validation split at the end.
RUN=$WORK/runs/synthetic
RESUME=""
[ -f "$RUN/checkpoints/last.pt" ] && RESUME="--resume"
$AMT train --data "$WORK/data/asap-piano" --data "$WORK/data/pop-mixed" --data "$WORK/data/folk-mixed" \
  --steps "$STEPS" --pitch-balanced --val-every 500 --out "$RUN" $RESUME

# 3. Release folder.
$AMT models export "$RUN" -o models/synthetic --overwrite

# 4. Realistic piano validation suite: ASAP pieces of the held-out test split, rendered with a piano
#    the model never heard (MuseScore General's sampled Steinway), with room reverb and noise.
$AMT synth "$MIDI/asap" -o "$WORK/data/asap-steinway-test" --split-by folder --only-split test \
  --soundfont "$HELD_OUT_SF" --programs 0 --excerpt-s 30 --seed 11 --reverb-p 1.0 --noise-p 1.0 --snr-db 20:35
$AMT evaluate --dataset synthetic --root "$WORK/data/asap-steinway-test" --split test --model models/synthetic \
  --json "$WORK/eval-steinway.json" --overwrite
