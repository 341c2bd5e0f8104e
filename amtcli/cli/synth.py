"""``amt synth``: MIDI files in, a labelled synthetic training set out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from . import app
from .common import OverwriteOpt, console, err_console, handle_errors, progress

_HELP = """Render MIDI files into labelled training audio (a dataset folder for `amt train`).

SOURCES are MIDI files or folders (searched recursively for *.mid / *.midi). Each piece gives --renders-per-piece items; an item is a random --excerpt-s excerpt rendered with a soundfont (FluidSynth) or by mixing one-shot samples, then augmented (reverb, EQ, low-pass, gain, noise, a lossy codec with --codec-p; transposition moves the labels too). Everything drawn is recorded in the manifest.

[bold]Output[/] (DATASET_DIR): dataset.json (settings), manifest.jsonl (one line per item: paths, split, source, renderer, soundfont/programs or timbres + alpha, transpose, excerpt, augmentations, seed), audio/<id>.flac (16 kHz mono), labels/<id>.mid (the sounding notes, sustain pedal applied, drums dropped), features/<id>.npy with --features (log-CQT, the model's front end).

[bold]Splits[/] train/validation/test are drawn per source file from a hash of the file's contents (--split-by file) or of its folder (--split-by folder: keeps all performances of one piece together, e.g. ASAP), never from the seed: a piece is in the same split in every dataset you make. --only-split test renders held-out pieces only (an evaluation set).

[bold]Resuming[/]: run the same command again to continue; items already written are skipped. Different settings into the same folder are refused (use a new folder or --overwrite). Adding more SOURCES with the same settings extends the dataset.

[bold]One-shot banks[/]: `amt synth --build-oneshots BANK_DIR [--soundfont SF] [--programs ...]` renders 4 s single notes per (program, pitch, velocity); then `amt synth SOURCES -o DIR --renderer oneshot --oneshots BANK_DIR` mixes two timbres per piece, main + alpha * sub. `--build-oneshots BANK_DIR --procedural 32` draws 32 procedural timbres instead (struck, plucked and sustained strings and pipes by additive synthesis: inharmonic partials, decays, body resonances), instruments no soundfont holds. A folder of your own WAV one-shots works too: put oneshots.csv beside them with columns file,pitch,velocity,timbre.

[bold]Examples[/]

amt synth ../shared/data/midi/asap -o data/asap-sf --split-by folder --workers 2

amt synth ../shared/data/midi/pop909 -o data/pop-guitar --programs guitar,piano,strings

amt synth ../shared/data/midi/asap -o data/asap-test --split-by folder --only-split test --augment none
"""


@app.command("synth", help=_HELP, no_args_is_help=True)
@handle_errors
def synth_command(
    sources: Annotated[Optional[List[Path]], typer.Argument(help="MIDI files or folders.", show_default=False)] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Dataset folder to create or continue.")
    ] = None,
    renderer: Annotated[
        str, typer.Option("--renderer", help="soundfont (FluidSynth) or oneshot (one-shot mixing).")
    ] = "soundfont",
    soundfont: Annotated[
        Optional[List[Path]],
        typer.Option(
            "--soundfont",
            "-s",
            help="A .sf2/.sf3 file; repeat for several (one drawn per item). Default: FluidR3_GM if installed, else pretty_midi's TimGM6mb.",
        ),
    ] = None,
    programs: Annotated[
        Optional[str],
        typer.Option(
            "--programs",
            "-p",
            help="GM programs (numbers or names: piano,guitar,bass,strings,organ,flute,...), one drawn per item for all its notes. Default: the MIDI's own.",
        ),
    ] = None,
    oneshots: Annotated[
        Optional[Path], typer.Option("--oneshots", help="One-shot bank folder for --renderer oneshot.")
    ] = None,
    build_oneshots: Annotated[
        Optional[Path],
        typer.Option("--build-oneshots", help="Build a one-shot bank in this folder from --soundfont(s) and exit."),
    ] = None,
    procedural: Annotated[
        Optional[int],
        typer.Option(
            "--procedural",
            min=1,
            help="With --build-oneshots: draw this many procedural timbres (struck, plucked, sustained; "
            "seeded by --seed) instead of rendering soundfonts.",
        ),
    ] = None,
    make_random: Annotated[
        Optional[Path],
        typer.Option(
            "--make-random",
            help="Write --count MIDI files of random polyphony (chords, runs, sparse notes; 60 s each, "
            "seeded by --seed) into this folder and exit; render them as SOURCES afterwards.",
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", min=1, help="Pieces for --make-random.")] = 100,
    mix_alpha: Annotated[
        str, typer.Option("--mix-alpha", help="Range of the sub-timbre weight alpha (one-shot mixing), MIN:MAX.")
    ] = "0.0:0.5",
    excerpt_s: Annotated[
        float, typer.Option("--excerpt-s", min=0.0, help="Excerpt length in seconds (0 = whole pieces).")
    ] = 20.0,
    renders_per_piece: Annotated[
        int, typer.Option("--renders-per-piece", "-k", min=1, help="Items rendered per source file.")
    ] = 1,
    max_hours: Annotated[
        Optional[float], typer.Option("--max-hours", min=0.0, help="Stop once the dataset holds this many hours.")
    ] = None,
    max_files: Annotated[
        Optional[int],
        typer.Option("--max-files", min=1, help="Use at most this many source files (a seeded random subset)."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed (excerpts, instruments, augmentations; not splits).")
    ] = 0,
    split: Annotated[str, typer.Option("--split", help="train:validation:test proportions.")] = "90:5:5",
    split_by: Annotated[
        str, typer.Option("--split-by", help="file (hash of the file's contents) or folder (hash of its folder path).")
    ] = "file",
    only_split: Annotated[
        Optional[List[str]],
        typer.Option("--only-split", help="Render only sources of this split (train, validation, test); repeatable."),
    ] = None,
    augment: Annotated[str, typer.Option("--augment", help="Augmentation preset: default or none.")] = "default",
    transpose: Annotated[
        Optional[int],
        typer.Option("--transpose", min=0, max=24, help="Max transposition in semitones (0 = off). Default 3, p=0.5."),
    ] = None,
    reverb_p: Annotated[
        Optional[float],
        typer.Option("--reverb-p", min=0.0, max=1.0, help="Probability of reverb (default 0.5, RT60 0.2-1.5 s)."),
    ] = None,
    ir_dir: Annotated[
        Optional[Path], typer.Option("--ir-dir", help="Folder of impulse responses to use instead of synthetic ones.")
    ] = None,
    ir_share: Annotated[
        Optional[float],
        typer.Option(
            "--ir-share",
            min=0.0,
            max=1.0,
            help="With --ir-dir: share of reverbs that use one of its files, the rest synthetic (default 1).",
        ),
    ] = None,
    codec_p: Annotated[
        Optional[float],
        typer.Option(
            "--codec-p",
            min=0.0,
            max=1.0,
            help="Probability of a lossy codec round trip: MP3, Vorbis or Opus at a drawn bitrate (default 0).",
        ),
    ] = None,
    noise_p: Annotated[
        Optional[float],
        typer.Option("--noise-p", min=0.0, max=1.0, help="Probability of added noise (default 0.5, SNR 10-40 dB)."),
    ] = None,
    snr_db: Annotated[Optional[str], typer.Option("--snr-db", help="Noise SNR range in dB, MIN:MAX.")] = None,
    lowpass_p: Annotated[
        Optional[float],
        typer.Option("--lowpass-p", min=0.0, max=1.0, help="Probability of a low-pass filter (default 0.3)."),
    ] = None,
    eq_p: Annotated[
        Optional[float],
        typer.Option("--eq-p", min=0.0, max=1.0, help="Probability of random peaking EQ (default 0.3)."),
    ] = None,
    audio_format: Annotated[str, typer.Option("--format", help="flac or wav (16-bit).")] = "flac",
    features: Annotated[
        bool, typer.Option("--features", help="Also store the log-CQT features of each item (features/<id>.npy).")
    ] = False,
    level_db: Annotated[
        Optional[float],
        typer.Option(
            "--level-db",
            max=0.0,
            help="With --features: bring each item to this input level (dBFS) before the CQT, as a model "
            "whose config has this level_db reads audio (the bundled `synthetic`: -24). Default: as rendered.",
        ),
    ] = None,
    sample_rate: Annotated[int, typer.Option("--sample-rate", min=8000, help="Audio sample rate.")] = 16000,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")] = 1,
    overwrite: OverwriteOpt = False,
):
    import dataclasses

    from ..errors import BadInput
    from ..synth.augment import augment_preset
    from ..synth.dataset import SynthConfig, build_dataset, parse_range, parse_split
    from ..synth.soundfont import parse_programs, resolve_soundfont

    prog_list = parse_programs(programs)
    sf_list = tuple(str(resolve_soundfont(s)) for s in (soundfont or []))

    if make_random is not None:
        from ..synth.random_midi import write_random_pieces

        if sources or build_oneshots is not None:
            raise BadInput("--make-random takes no SOURCES and no --build-oneshots (it writes MIDI files and exits)")
        paths = write_random_pieces(make_random, count, seed=seed)
        console().print(f"{len(paths)} random pieces in {make_random} (seed {seed})")
        return

    if procedural is not None and build_oneshots is None:
        raise BadInput("--procedural N draws the timbres of a one-shot bank: give --build-oneshots BANK_DIR too")
    if build_oneshots is not None:
        from ..synth.oneshot import build_bank
        from ..synth.procedural import build_procedural_bank

        if sources:
            raise BadInput("--build-oneshots takes no SOURCES (it renders single notes from --soundfont)")
        if procedural is not None and (sf_list or prog_list):
            raise BadInput("--procedural timbres use no --soundfont or --programs; build a bank of each and mix them")
        bar = progress()
        with bar:
            task = bar.add_task("one-shots", total=None, info="")

            def tick(done: int, total: int, name: str):
                bar.update(task, completed=done, total=total, info=name)

            if procedural is not None:
                info = build_procedural_bank(
                    build_oneshots,
                    n_timbres=procedural,
                    seed=seed,
                    sample_rate=sample_rate,
                    overwrite=overwrite,
                    on_progress=tick,
                )
            else:
                info = build_bank(
                    build_oneshots,
                    soundfonts=sf_list or (None,),
                    programs=prog_list,
                    sample_rate=sample_rate,
                    overwrite=overwrite,
                    on_progress=tick,
                )
        console().print(
            f"one-shot bank: {info['n_samples']} notes of {len(info['timbres'])} timbres in {build_oneshots}"
        )
        return

    if not sources:
        raise BadInput("give MIDI files or folders to render (see amt synth --help)")
    if output is None:
        raise BadInput("give the dataset folder with -o/--output")

    aug = augment_preset(augment)
    changes = {}
    if transpose is not None:
        changes["transpose_max"] = transpose
        if transpose == 0:
            changes["transpose_p"] = 0.0
        elif aug.transpose_p == 0.0:
            changes["transpose_p"] = 0.5
    if level_db is not None and not features:
        raise BadInput("--level-db sets the level of the stored features: give --features too")
    if ir_share is not None and ir_dir is None:
        raise BadInput("--ir-share needs --ir-dir (the folder of impulse responses to draw from)")
    for name, value in (
        ("reverb_p", reverb_p),
        ("noise_p", noise_p),
        ("lowpass_p", lowpass_p),
        ("eq_p", eq_p),
        ("ir_share", ir_share),
        ("codec_p", codec_p),
    ):
        if value is not None:
            changes[name] = value
    if snr_db is not None:
        changes["snr_db"] = parse_range(snr_db, name="--snr-db")
    if ir_dir is not None:
        changes["ir_dir"] = str(ir_dir.resolve())
        if reverb_p is None and aug.reverb_p == 0.0:
            changes["reverb_p"] = 0.5
    aug = dataclasses.replace(aug, **changes)

    config = SynthConfig(
        renderer=renderer,
        soundfonts=sf_list,
        programs=prog_list,
        oneshots=str(oneshots.resolve()) if oneshots else None,
        mix_alpha=parse_range(mix_alpha, name="--mix-alpha", lo=0.0, hi=1.0),
        sample_rate=sample_rate,
        excerpt_s=excerpt_s,
        renders_per_piece=renders_per_piece,
        seed=seed,
        split=parse_split(split),
        split_by=split_by,
        audio_format=audio_format.lower().lstrip("."),
        features=features,
        feature_level_db=level_db,
        augment=aug,
    )
    bar = progress()
    with bar:
        task = bar.add_task("synth", total=None, info="")

        def start(n: int):
            bar.update(task, total=n)

        def step(chunk, summary):
            bar.update(task, completed=summary.files_done, info=f"{summary.seconds_total / 3600:.2f} h")

        summary = build_dataset(
            sources,
            output,
            config=config,
            workers=workers,
            max_files=max_files,
            max_hours=max_hours,
            only_split=tuple(only_split) if only_split else None,
            overwrite=overwrite,
            on_start=start,
            on_progress=step,
        )
        bar.update(task, completed=summary.files_done, info=f"{summary.seconds_total / 3600:.2f} h")

    from rich.table import Table

    table = Table(title=f"amt synth -> {output}", show_header=False)
    table.add_row("source files", str(summary.files_seen))
    table.add_row("items written", str(summary.items_written))
    table.add_row("items already there", str(summary.items_skipped))
    table.add_row("audio written", f"{summary.seconds_written / 3600:.3f} h ({summary.seconds_written:.1f} s)")
    table.add_row("dataset total", f"{summary.seconds_total / 3600:.3f} h")
    if summary.stopped_at_cap:
        table.add_row("stopped", f"--max-hours {max_hours} reached")
    table.add_row("skipped (problems)", str(len(summary.problems)))
    console().print(table)
    if summary.problems:
        ec = err_console()
        ec.print(f"[yellow]{len(summary.problems)} file(s)/render(s) skipped:[/]")
        from rich.markup import escape

        for line in summary.problems[:20]:
            ec.print(f"  {escape(line)}", soft_wrap=True)
        if len(summary.problems) > 20:
            ec.print(f"  ... and {len(summary.problems) - 20} more")
    if summary.items_written == 0 and summary.items_skipped == 0:
        raise typer.Exit(1)
