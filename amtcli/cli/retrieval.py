"""``amt evaluate --task retrieval``: audio-to-score retrieval with an embedding model on an ``amt synth`` dataset.

Called from :mod:`amtcli.cli.evaluate` with its parsed options; not a command of its own.
"""

from __future__ import annotations

from .common import console, err_console

N_SNIPPETS = 2000  # the database size of the protocol (fewer when the split holds fewer snippets)


def _cell(value: float, measure: str) -> str:
    if value == float("inf"):
        return "inf"
    if measure == "MR":
        return f"{value:.1f}"
    return f"{value:.3f}"


def run_retrieval_task(opts: dict) -> None:
    import json

    from rich.markup import escape
    from rich.table import Table

    from ..datasets.base import resolve_root
    from ..datasets.embedding_pairs import load_pair_items
    from ..datasets.synthetic import INFO
    from ..errors import BadInput, OutputExists
    from ..evaluation.retrieval import HIGHER_IS_BETTER, MEASURES, evaluate_retrieval
    from ..inference.identify import load_embedding_model

    if opts["dataset"] not in ("synthetic", "pairs"):  # "pairs" is the command's default
        raise BadInput(
            f"--task retrieval reads `amt synth` datasets: use -d synthetic --root DIR, not -d {opts['dataset']}"
        )
    if opts["predictions"]:
        raise BadInput("--task retrieval scores embedding models (--model); --predictions is for transcription")
    for flag in ("snr", "plot", "csv"):
        if opts.get(flag):
            raise BadInput(f"--{flag} is not used by --task retrieval")
    out_json = opts.get("json")
    if out_json is not None and out_json.exists() and not opts["overwrite"]:
        raise OutputExists(f"{out_json} already exists (use --overwrite to replace it)")
    root = resolve_root(INFO, opts["root"])
    split = opts["split"] or "test"
    specs = opts["model"] or ["embedding"]
    models = [(spec, load_embedding_model(spec)) for spec in specs]
    fc = models[0][1].feature_config
    if any(m.feature_config != fc for _, m in models):
        raise BadInput("the models use different front ends; evaluate them one at a time")
    items = load_pair_items(root, feature_config=fc, splits=None if split == "all" else [split])
    if not items:
        raise BadInput(f"{root}: no items in split {split!r} (choose another --split, or --split all)")
    if opts["limit"]:
        items = sorted(items, key=lambda it: it.id)[: opts["limit"]]

    rows: dict[str, dict] = {}
    report = None
    for i, (spec, model) in enumerate(models):
        err_console().print(f"embedding {N_SNIPPETS} snippets at most with {escape(spec)} ...")
        report = evaluate_retrieval(model, items, n_snippets=N_SNIPPETS, seed=opts["seed"], with_untrained=i == 0)
        rows[spec] = report.rows["model"]
    assert report is not None
    rows["untrained (same shape)"] = report.rows["untrained"]
    rows["chance"] = report.rows["chance"]

    table = Table(
        title=(
            f"audio-to-score retrieval · {root.name} · {split} · {report.n} snippets of "
            f"{report.snippet_frames} frames from {report.n_pieces} pieces"
        ),
        title_justify="left",
    )
    table.add_column("System")
    for m in MEASURES:
        table.add_column(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}", justify="right")
    for name, row in rows.items():
        table.add_row(escape(name), *(_cell(row[m], m) for m in MEASURES))
    console().print(table)
    if report.n < N_SNIPPETS:
        err_console().print(f"[yellow]note:[/] the split holds {report.n} distinct snippets, fewer than {N_SNIPPETS}")
    if out_json is not None:
        doc = {
            "task": "retrieval",
            "dataset": {"root": str(root), "split": split, "n_items": len(items)},
            "n": report.n,
            "snippet_frames": report.snippet_frames,
            "n_pieces": report.n_pieces,
            "seed": opts["seed"],
            "rows": {k: {m: (None if v == float("inf") else v) for m, v in r.items()} for k, r in rows.items()},
        }
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(doc, indent=2) + "\n")
        console().print(f"wrote {out_json}")
