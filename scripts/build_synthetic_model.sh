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

# 1. Training data: performed piano (ASAP, split by piece folder), pop arrangements and folk tunes on
#    pianos, guitars and other GM programs; 20 s excerpts, default augmentation, cached features.
#    (v1's ASAP run was stopped after 408 items, the first files of the seeded file order, to leave
#    time for training; --max-files 408 takes about the same files.)
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

# 4. Measure it: realistic piano (held-out pieces, held-out soundfont, room, noise, lossy codec) and
#    the real recordings at hand (figures for the model card).
bash scripts/evaluate_synthetic_model.sh models/synthetic
