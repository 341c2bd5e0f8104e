#!/usr/bin/env bash
# Recipe: the `synthetic-transformer` (token Transformer trained on one-shot-mixed audio) and its
# domain-confusion ablation, from nothing to a results table.
#
#   SCALE=toy  bash scripts/train_transformer.sh   # a few minutes on 1 CPU core: proves every step runs
#   SCALE=compact bash scripts/train_transformer.sh  # the bundled `synthetic-transformer`: ~2 h on 2 cores
#   SCALE=full bash scripts/train_transformer.sh   # the full recipe (see README "The token Transformer" for hours)
#   ARMS=domain-confusion ... runs one arm only (start both arms in two shells to use two cores)
#
# Data (nothing here ever trains on the evaluation pieces):
#   labelled   $W/synth   POP909 + Nottingham, one-shot mixing of FluidR3_GM timbres (main + alpha * sub)
#   target     $W/target  the same corpora rendered with a soundfont held out from training (TimGM6mb)
#                         plus reverb and noise on every item. Its *train* split is the unlabeled audio of
#                         the domain-confusion arm (`--unlabeled` reads only the train split of an
#                         `amt synth` folder); its *test* split is the target-domain evaluation set.
#   Splits are a hash of each MIDI file's contents, so both folders hold out the same test pieces.
# Arms: A = synthetic only; B = synthetic + domain confusion against $W/target. Same seed, steps, model.
# Evaluation: note F1 on the target test split, on the synthetic test split, and on the real piano
# recordings at hand (madmom sample, MAESTRO clip) when ../shared/data is there.
set -euo pipefail
cd "$(dirname "$0")/.."

AMT=${AMT:-.venv/bin/amt}
NICE=${NICE:-nice -n 10}
DATA=${AMT_DATA:-../shared/data}
D=$DATA/midi
SCALE=${SCALE:-toy}
# one thread per process: on a shared 2-core machine two contended torch threads run ~10x slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${THREADS:-1}}
W=${WORK:-work/transformer-$SCALE}
TRAIN_SF=/usr/share/sounds/sf2/FluidR3_GM.sf2
# the target domain's soundfont: MuseScore General's sampled piano when installed (scripts/setup.sh
# installs it), else pretty_midi's TimGM6mb; never used for the labelled data
MSG=/usr/share/sounds/sf3/MuseScore_General.sf3
TIM=$(.venv/bin/python -c "import pretty_midi, pathlib; print(pathlib.Path(pretty_midi.__file__).parent / 'TimGM6mb.sf2')")
if [ -f $MSG ]; then DEFAULT_HELD_OUT=$MSG; else DEFAULT_HELD_OUT=$TIM; fi
HELD_OUT_SF=${HELD_OUT_SF:-$DEFAULT_HELD_OUT}
ARMS=${ARMS:-synthetic-only domain-confusion}
WORKERS=${WORKERS:-1}
STAGES=${STAGES:-data train eval}   # e.g. STAGES=data, then ARMS=... STAGES=train in two shells, then STAGES=eval
want() { [[ " $STAGES " == *" $1 "* ]]; }
PROGRAMS=piano,electric_piano,harpsichord,guitar,strings,organ

case $SCALE in
  toy)
    FILES=(--max-files 12 --split 50:25:25) ; EXCERPT=10 ; K=1 ; STEPS=40 ; VAL_EVERY=20 ; BATCH=4 ; WARMUP=20 ; BANK_PROGRAMS=piano
    MODEL='conv_channels = [8, 8]
d_model = 64
n_heads = 2
encoder_layers = 1
decoder_layers = 1
ff_dim = 128
max_tokens = 128'
    ;;
  compact)
    # 600 pieces: ~6.7 h of labelled audio (2 x 20 s excerpts each), ~3.3 h of target audio
    LR=${LR:-1e-3} ; FILES=(--max-files 600) ; EXCERPT=20 ; K=2 ; STEPS=${STEPS:-8000} ; VAL_EVERY=1000 ; BATCH=8 ; WARMUP=1000 ; BANK_PROGRAMS=$PROGRAMS
    MODEL=''   # the TransformerConfig defaults (1.46 M parameters)
    ;;
  full)
    # 1000 pieces: ~11 h of labelled audio (2 x 20 s excerpts each), ~5.5 h of target audio
    FILES=(--max-files 1000) ; EXCERPT=20 ; K=2 ; STEPS=30000 ; VAL_EVERY=1000 ; BATCH=8 ; WARMUP=3000 ; BANK_PROGRAMS=$PROGRAMS
    MODEL=''   # the TransformerConfig defaults (1.46 M parameters)
    ;;
  *) echo "SCALE must be toy, compact or full" >&2; exit 2 ;;
esac

mkdir -p "$W"
cat > "$W/transformer.toml" <<EOF
[model]
$MODEL

[train]
batch_size = $BATCH
lr = ${LR:-5e-4}
warmup_steps = $(( STEPS / 20 > 1 ? STEPS / 20 : 1 ))
val_every = $VAL_EVERY
val_items = 16
checkpoint_every = $VAL_EVERY
threads = ${THREADS:-1}
seed = 0
EOF

if want data; then
echo "== 1. one-shot bank from the training soundfont"
[ -f "$W/bank/bank.json" ] || $NICE $AMT synth --build-oneshots "$W/bank" -s "$TRAIN_SF" --programs "$BANK_PROGRAMS"

echo "== 2. labelled synthetic data (one-shot mixing)"
$NICE $AMT synth "$D/pop909" "$D/nottingham" -o "$W/synth" --renderer oneshot --oneshots "$W/bank" \
  --mix-alpha 0.0:0.5 --excerpt-s $EXCERPT -k $K "${FILES[@]}" --features --seed 1 --workers $WORKERS

echo "== 3. target domain: held-out soundfont + reverb + noise"
$NICE $AMT synth "$D/pop909" "$D/nottingham" -o "$W/target" -s "$HELD_OUT_SF" --programs piano \
  --reverb-p 1.0 --noise-p 1.0 --snr-db 15:30 --excerpt-s $EXCERPT -k 1 "${FILES[@]}" --features --seed 1 --workers $WORKERS

fi

if want train; then
echo "== 4. the two arms"
for arm in $ARMS; do
  extra=()
  [ $arm = domain-confusion ] && extra=(--unlabeled "$W/target" --domain-weight ${DOMAIN_WEIGHT:-0.3} --domain-warmup $WARMUP)
  if [ -f "$W/runs/$arm/checkpoints/last.pt" ]; then extra+=(--resume); fi
  $NICE $AMT train --model transformer --data "$W/synth" "${extra[@]}" --config "$W/transformer.toml" \
    --steps $STEPS --out "$W/runs/$arm" --device cpu
  $AMT models export "$W/runs/$arm" -o "$W/releases/$arm" --overwrite
done

fi

want eval || exit 0
echo "== 5. evaluation"
A=$W/releases/synthetic-only ; B=$W/releases/domain-confusion
# the bundled U-Net (`synthetic`, trained on other data: soundfont renders of ASAP/POP909/Nottingham)
# is scored beside the two arms for reference
REF=(-m synthetic)
$NICE $AMT evaluate -d synthetic --root "$W/target" --split test -m "$A" -m "$B" "${REF[@]}" --json "$W/eval-target.json" --overwrite
# the target's validation split (not among the unlabeled audio either): which arm ships is chosen here,
# so the test figures above stay untouched by that choice
$NICE $AMT evaluate -d synthetic --root "$W/target" --split validation -m "$A" -m "$B" --json "$W/eval-target-val.json" --overwrite
$NICE $AMT evaluate -d synthetic --root "$W/synth" --split test -m "$A" -m "$B" "${REF[@]}" --json "$W/eval-synth.json" --overwrite
if [ -d "$DATA/real/madmom_piano_sample" ]; then
  $NICE $AMT evaluate -d pairs --root "$DATA/real/madmom_piano_sample" -m "$A" -m "$B" "${REF[@]}" --json "$W/eval-real.json" --overwrite
fi
if [ -d "$DATA/real/maestro" ]; then
  $NICE $AMT evaluate -d maestro --root "$DATA/real/maestro" --split all -m "$A" -m "$B" "${REF[@]}" --json "$W/eval-maestro.json" --overwrite
fi
# ASAP pieces (never in the transformer's data) rendered like the target domain (MuseScore piano,
# reverb, noise): made by scripts/evaluate_synthetic_model.sh for the U-Net's evaluation
if [ -f "${ASAP_TEST:-work/data/asap-steinway-test}/manifest.jsonl" ]; then
  $NICE $AMT evaluate -d synthetic --root "${ASAP_TEST:-work/data/asap-steinway-test}" --split test -m "$A" -m "$B" "${REF[@]}" --json "$W/eval-asap.json" --overwrite
fi
.venv/bin/python scripts/transformer_table.py "$W" | tee "$W/ablation.md"
echo "done: $W/eval-*.json, $W/ablation.md; training logs in $W/runs/*/metrics.jsonl"
