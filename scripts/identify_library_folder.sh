#!/usr/bin/env bash
# The library of benchmarks/identify_library.py as one folder for `amt identify --library` (3,014 files:
# ASAP, POP909, Nottingham and the 11 MAPS test scores of scripts/make_test_scores.py), as symbolic links
# named by their path below ../shared/data/midi, so that the CLI can be timed on the same library:
#
#   bash scripts/identify_library_folder.sh [OUT]          # default OUT: work/identify/library
#   .venv/bin/amt identify REC.wav --library work/identify/library --jobs 2   # first: indexes (cached)
#   /usr/bin/time .venv/bin/amt identify REC.wav --library work/identify/library
set -euo pipefail
cd "$(dirname "$0")/.."
MIDI=$(realpath "${AMT_DATA:-../shared/data}/midi")
OUT=${1:-work/identify/library}
mkdir -p "$OUT"
[ -d work/scores ] || .venv/bin/python scripts/make_test_scores.py
for set in asap pop909 nottingham; do
  find "$MIDI/$set" -type f \( -iname '*.mid' -o -iname '*.midi' \) -print0 | while IFS= read -r -d '' f; do
    rel=${f#"$MIDI"/}
    ln -sfn "$f" "$OUT/${rel//\//__}"
  done
done
for f in work/scores/*.mid; do ln -sfn "$(realpath "$f")" "$OUT/$(basename "$f")"; done
echo "$OUT: $(find "$OUT" -maxdepth 1 -type l | wc -l) files"
