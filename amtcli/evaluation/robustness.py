"""Robustness to noise: the same items re-transcribed with noise mixed in at each SNR.

Each file's noise comes from a generator seeded by (seed, file id), so every SNR and every model
hears the same noise signal, only scaled (for a noise recording: the same excerpt of it); results
are reproducible run to run.
"""

from __future__ import annotations

from typing import Sequence

from ..audio.noise import check_noise
from .suites import CLEAN, Condition, RunResult


def snr_conditions(snrs: Sequence[float], *, noise: str = "white", include_clean: bool = True) -> list[Condition]:
    """Clean first (the baseline), then the SNRs from cleanest to noisiest, without repeats.
    ``noise``: a colour or a noise recording's path (:func:`~amtcli.audio.noise.check_noise`)."""
    noise = check_noise(noise)
    ordered = sorted(set(float(s) for s in snrs), reverse=True)
    return ([CLEAN] if include_clean else []) + [Condition(s, noise) for s in ordered]


def f1_by_condition(
    runs: Sequence[RunResult], *, metric: str = "note", scope: str = "micro"
) -> tuple[list[str], list[Condition], dict[tuple[str, Condition], float | None]]:
    """(systems, conditions, {(system, condition): F1}) for a table or plot of F1 against SNR."""
    systems = list(dict.fromkeys(r.system for r in runs))
    conditions = list(dict.fromkeys(r.condition for r in runs))
    table = {}
    for r in runs:
        s = r.aggregate()[scope][metric]
        table[(r.system, r.condition)] = None if s is None else s["f1"]
    return systems, conditions, table
