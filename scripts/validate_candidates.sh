#!/usr/bin/env bash
# Score candidate checkpoints of a training run on the real validation material, beside the bundled
# model, to choose which (if any) to ship (issue 15: a new default must not lose on any of them).
#
#   bash scripts/validate_candidates.sh RUN CHECKPOINT...    # CHECKPOINT: best, last or a .pt path
#
# Each checkpoint is exported (`amt models export`) to $WORK/candidates/<run>-<checkpoint> and scored
# with `amt evaluate` (note F1, micro, 50 ms onsets) on
#   - the 11 real MAPS Disklavier recordings ($AMT_DATA/real/maps),
#   - the real GuitarSet solo ($AMT_DATA/real/guitarset_real),
#   - the quiet clean piano renders of scripts/evaluate_synthetic_model.sh (step 1b; made there),
# the same rows as that script writes for the model card; figures go to $WORK/eval/<candidate>-*.json
# and one table is printed at the end (`synthetic` first, from its own JSON files when present).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/validate_candidates.sh RUN CHECKPOINT..." >&2
  exit 2
fi
AMT=.venv/bin/amt
DATA=${AMT_DATA:-../shared/data}
WORK=${WORK:-work}
RUN=$1
shift
[ -f "$RUN/config.json" ] || { echo "error: $RUN is not a run folder of amt train (no config.json)" >&2; exit 1; }
QUIET=$WORK/data/asap-clean-quiet
[ -d "$QUIET" ] || { echo "error: $QUIET missing: run step 1b of scripts/evaluate_synthetic_model.sh first" >&2; exit 1; }
mkdir -p "$WORK/candidates" "$WORK/eval"

score() {  # MODEL NAME: the three validation rows
  $AMT evaluate -d maps --root "$DATA/real/maps" --split all -m "$1" --json "$WORK/eval/$2-maps-real.json" --overwrite >/dev/null
  $AMT evaluate -d guitarset --root "$DATA/real/guitarset_real" --split all -m "$1" \
    --json "$WORK/eval/$2-guitarset-real.json" --overwrite >/dev/null
  $AMT evaluate -d pairs --root "$QUIET" -m "$1" --json "$WORK/eval/$2-clean-quiet.json" --overwrite >/dev/null
}

names=()
[ -f "$WORK/eval/synthetic-maps-real.json" ] && [ -f "$WORK/eval/synthetic-guitarset-real.json" ] \
  && [ -f "$WORK/eval/synthetic-clean-quiet.json" ] || score synthetic synthetic
names+=(synthetic)
for ckpt in "$@"; do
  tag=$(basename "$ckpt" .pt)
  name="$(basename "$RUN")-$tag"
  $AMT models export "$RUN" -o "$WORK/candidates/$name" --checkpoint "$ckpt" --overwrite >/dev/null
  score "./$WORK/candidates/$name" "$name"
  names+=("$name")
done

.venv/bin/python - "$WORK/eval" "${names[@]}" <<'EOF'
import json, sys
from pathlib import Path

folder, names = Path(sys.argv[1]), sys.argv[2:]
rows = (("maps-real", "MAPS real"), ("guitarset-real", "real guitar"), ("clean-quiet", "quiet renders"))
print(f"{'model':32s}" + "".join(f"{title:>24s}" for _, title in rows) + "   (note F1, P/R)")
for name in names:
    cells = []
    for suffix, _ in rows:
        note = json.loads((folder / f"{name}-{suffix}.json").read_text())["runs"][0]["aggregate"]["micro"]["note"]
        cells.append(f"{note['f1']:.3f} ({note['precision']:.3f}/{note['recall']:.3f})")
    print(f"{name:32s}" + "".join(f"{c:>24s}" for c in cells))
EOF
