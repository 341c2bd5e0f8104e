"""Evaluation results as JSON, CSV and a robustness plot (F1 against SNR). Files are written
atomically (temporary name, then rename); the caller decides about overwriting."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from .metrics import METRIC_LABELS, METRICS, SETTINGS
from .suites import RunResult

SCORE_FIELDS = ("precision", "recall", "f1")


def _write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _counts_json(counts) -> dict[str, Any] | None:
    if counts is None:
        return None
    return {**counts.scores(), "tp": counts.tp, "n_ref": counts.n_ref, "n_est": counts.n_est}


def runs_to_dict(runs: Sequence[RunResult], *, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a run measured, JSON-ready: settings, and per system/condition the files and aggregates."""
    return {
        "amtcli_version": __version__,
        "task": "transcription",
        **(meta or {}),
        "settings": SETTINGS,
        "runs": [
            {
                "system": run.system,
                "condition": run.condition.name,
                "snr_db": run.condition.snr_db,
                "noise": run.condition.noise if run.condition.snr_db is not None else None,
                "aggregate": run.aggregate(),
                "files": [
                    {
                        "id": f.item_id,
                        "piece": f.piece,
                        "duration_s": f.duration_s,
                        **{m: _counts_json(f.counts.get(m)) for m in METRICS},
                    }
                    for f in run.files
                ],
            }
            for run in runs
        ],
    }


def write_json(path: str | os.PathLike, runs: Sequence[RunResult], *, meta: dict[str, Any] | None = None) -> Path:
    return _write_text(Path(path), json.dumps(runs_to_dict(runs, meta=meta), indent=2) + "\n")


def csv_columns() -> list[str]:
    cols = ["system", "condition", "snr_db", "noise", "scope", "file", "duration_s"]
    for m in METRICS:
        cols += [f"{m}_{k}" for k in SCORE_FIELDS]
    for m in METRICS:
        cols += [f"{m}_n_ref", f"{m}_n_est", f"{m}_tp"]
    return cols


def runs_to_rows(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per file, plus ``micro`` and ``macro`` rows, per system and condition."""
    rows = []
    for run in runs:
        base = {
            "system": run.system,
            "condition": run.condition.name,
            "snr_db": "" if run.condition.snr_db is None else run.condition.snr_db,
            "noise": "" if run.condition.snr_db is None else run.condition.noise,
        }
        for f in run.files:
            row = {**base, "scope": "file", "file": f.item_id, "duration_s": round(f.duration_s, 3)}
            for m in METRICS:
                c = f.counts.get(m)
                if c is not None:
                    row.update({f"{m}_{k}": round(v, 6) for k, v in c.scores().items()})
                    row.update({f"{m}_n_ref": c.n_ref, f"{m}_n_est": c.n_est, f"{m}_tp": c.tp})
            rows.append(row)
        agg = run.aggregate()
        for scope in ("micro", "macro"):
            row = {**base, "scope": scope, "file": ""}
            for m in METRICS:
                s = agg[scope][m]
                if s is not None:
                    row.update({f"{m}_{k}": round(s[k], 6) for k in SCORE_FIELDS})
                    if scope == "micro":
                        row.update({f"{m}_n_ref": s["n_ref"], f"{m}_n_est": s["n_est"], f"{m}_tp": s["tp"]})
            rows.append(row)
    return rows


def write_csv(path: str | os.PathLike, runs: Sequence[RunResult]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_columns(), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(runs_to_rows(runs))
    return _write_text(Path(path), buf.getvalue())


def plot_robustness(
    path: str | os.PathLike,
    runs: Sequence[RunResult],
    *,
    metrics: Sequence[str] = ("note", "frame"),
    scope: str = "micro",
    title: str | None = None,
) -> Path:
    """F1 against SNR, one colour per system, one line style per metric; clean scores as dotted lines.

    Drawn on matplotlib's Agg canvas without pyplot (no display, no global backend change).
    The format follows the suffix (png, pdf, svg).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    systems = list(dict.fromkeys(r.system for r in runs))
    styles = ["-", "--", "-.", ":"]
    colors = [f"C{i % 10}" for i in range(len(systems))]
    all_snrs = sorted({r.condition.snr_db for r in runs if r.condition.snr_db is not None})
    for si, system in enumerate(systems):
        mine = [r for r in runs if r.system == system]
        noisy = sorted((r for r in mine if r.condition.snr_db is not None), key=lambda r: r.condition.snr_db)
        clean = next((r for r in mine if r.condition.snr_db is None), None)
        for mi, metric in enumerate(metrics):
            label = f"{system} · {METRIC_LABELS[metric]}"
            xs = [r.condition.snr_db for r in noisy]
            ys = [(r.aggregate()[scope][metric] or {}).get("f1", float("nan")) for r in noisy]
            if xs:
                ax.plot(xs, ys, styles[mi % len(styles)], marker="o", color=colors[si], label=label)
            if clean is not None:
                agg = clean.aggregate()[scope][metric]
                if agg is not None:
                    ax.axhline(
                        agg["f1"],
                        color=colors[si],
                        linestyle=":",
                        linewidth=0.8,
                        alpha=0.7,
                        label=None if xs else f"{label} (clean)",
                    )
    if all_snrs:
        ax.set_xlim(max(all_snrs) + 2, min(all_snrs) - 2)  # cleaner audio on the left
        ax.set_xticks(all_snrs)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("SNR (dB); dotted: clean audio")
    ax.set_ylabel(f"F1 ({scope})")
    noise = next((r.condition.noise for r in runs if r.condition.snr_db is not None), None)
    if noise is not None:
        from ..audio.noise import noise_label

        noise = noise_label(noise)
    ax.set_title(title or (f"Transcription F1 under {noise} noise" if noise else "Transcription F1"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png")
    os.replace(tmp, path)
    return path
