#!/usr/bin/env bash
# Measure a transcription model the way its model card reports it. Writes work/eval/<name>-*.json.
#
#   bash scripts/evaluate_synthetic_model.sh [MODEL]      # default: the bundled `synthetic`
#
# 1. Realistic piano: ASAP pieces of the held-out test split (never trained on, split by piece) rendered
#    with MuseScore General's sampled Steinway (a soundfont never trained on), with room reverb
#    (RT60 0.2-1.5 s) and noise at 20-35 dB SNR; then the same audio through Ogg Vorbis at ~q0.1.
# 2. The real recordings in ../shared/data/real: the MAPS Disklavier recordings (11, 29 min) and the real
#    GuitarSet recording (the validation material), the MAESTRO and GuitarSet clips, the madmom piano sample.
# 3. The bundled example.
# WORKERS (default 2) sets the rendering processes.
set -euo pipefail
cd "$(dirname "$0")/.."
AMT=.venv/bin/amt
MODEL=${1:-synthetic}
NAME=$(basename "$MODEL")
DATA=${AMT_DATA:-../shared/data}
WORK=${WORK:-work}
OUT=$WORK/eval
mkdir -p "$OUT"

SUITE=$WORK/data/asap-steinway-test
$AMT synth "$DATA/midi/asap" -o "$SUITE" --split-by folder --only-split test \
  --soundfont /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 --programs 0 --excerpt-s 30 --seed 11 \
  --reverb-p 1.0 --noise-p 1.0 --snr-db 20:35 --workers "${WORKERS:-2}"
[ -d "$WORK/data/asap-steinway-ogg" ] || .venv/bin/python scripts/make_lossy_copy.py "$SUITE" "$WORK/data/asap-steinway-ogg" --quality 0.1

# 1b. Clean and quiet piano: the same held-out pieces and piano with no augmentation, then the same
#     audio 28 dB down (peak about -29 dBFS) stored as 16-bit WAV, as a quiet home recording would be.
CLEAN=$WORK/data/asap-clean-test
$AMT synth "$DATA/midi/asap" -o "$CLEAN" --split-by folder --only-split test \
  --soundfont /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 --programs 0 --excerpt-s 30 --seed 12 \
  --augment none --workers "${WORKERS:-2}"
[ -d "$WORK/data/asap-clean-quiet" ] || .venv/bin/python scripts/make_lossy_copy.py "$CLEAN" "$WORK/data/asap-clean-quiet" --format wav --gain-db -28
$AMT evaluate -d synthetic --root "$CLEAN" --split test -m "$MODEL" --json "$OUT/$NAME-clean.json" --overwrite
$AMT evaluate -d pairs --root "$WORK/data/asap-clean-quiet" -m "$MODEL" --json "$OUT/$NAME-clean-quiet.json" --overwrite

$AMT evaluate -d synthetic --root "$SUITE" --split test -m "$MODEL" --json "$OUT/$NAME-steinway.json" --overwrite
$AMT evaluate -d pairs --root "$WORK/data/asap-steinway-ogg" -m "$MODEL" --json "$OUT/$NAME-steinway-ogg.json" --overwrite
$AMT evaluate -d maestro --root "$DATA/real/maestro" --split all -m "$MODEL" --json "$OUT/$NAME-maestro.json" --overwrite
$AMT evaluate -d guitarset --root "$DATA/real/guitarset" --split all -m "$MODEL" --json "$OUT/$NAME-guitarset.json" --overwrite
$AMT evaluate -d pairs --root "$DATA/real/madmom_piano_sample" -m "$MODEL" --json "$OUT/$NAME-madmom.json" --overwrite
$AMT evaluate -d maps --root "$DATA/real/maps" --split all -m "$MODEL" --json "$OUT/$NAME-maps-real.json" --overwrite
$AMT evaluate -d guitarset --root "$DATA/real/guitarset_real" --split all -m "$MODEL" --json "$OUT/$NAME-guitarset-real.json" --overwrite
$AMT evaluate -d pairs --root examples -m "$MODEL" --json "$OUT/$NAME-example.json" --overwrite

# 4. The peer on the same real recordings (basic-pitch 0.4.0 through ../shared/tools/basic-pitch-peer,
#    when it is there), scored beside the model in one table each.
PEER=${PEER:-$DATA/../tools/basic-pitch-peer}
if [ -x "$PEER" ]; then
  [ -d "$WORK/peers/maps/basic-pitch" ] || "$PEER" "$DATA/real/maps" "$WORK/peers/maps/basic-pitch"
  [ -d "$WORK/peers/guitar/basic-pitch" ] || "$PEER" "$DATA/real/guitarset_real/audio_mono-mic" "$WORK/peers/guitar/basic-pitch"
  $AMT evaluate -d maps --root "$DATA/real/maps" --split all -m "$MODEL" -p "$WORK/peers/maps/basic-pitch" --json "$OUT/$NAME-maps-real-vs-basic-pitch.json" --overwrite
  $AMT evaluate -d guitarset --root "$DATA/real/guitarset_real" --split all -m "$MODEL" -p "$WORK/peers/guitar/basic-pitch" --json "$OUT/$NAME-guitarset-real-vs-basic-pitch.json" --overwrite
  [ -d "$WORK/peers/clean-quiet/basic-pitch" ] || "$PEER" "$WORK/data/asap-clean-quiet" "$WORK/peers/clean-quiet/basic-pitch"
  $AMT evaluate -d pairs --root "$WORK/data/asap-clean-quiet" -m "$MODEL" -p "$WORK/peers/clean-quiet/basic-pitch" --json "$OUT/$NAME-clean-quiet-vs-basic-pitch.json" --overwrite
else
  echo "basic-pitch peer not found at $PEER: no peer comparison" >&2
fi
