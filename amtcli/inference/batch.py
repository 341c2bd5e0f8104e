"""Many recordings at once: where each output goes, checks made before any work, and a batch that
goes on past a bad file (in worker processes with ``jobs > 1``).

``amt transcribe`` calls :func:`plan_outputs`, :func:`check_outputs` and :func:`transcribe_files`;
each file is transcribed and written by :func:`transcribe_to_file`, the same function in the
command's process (``jobs=1``) and in each worker, so a batch gives the same files either way.
Workers are started with ``spawn`` (safe with CUDA and with torch's thread pools), load the model
once each in their initializer for the backend the command chose (torch or onnxruntime), use
``max(1, cores // jobs)`` threads (torch or onnxruntime, and numpy's BLAS), and die with the
command (:func:`amtcli.workers.die_with_parent`).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..config import CHUNK_S, DecodeConfig
from ..errors import AmtError, AmtWarning, BadAudio, BadInput, OutputExists


@dataclass
class FileOutcome:
    """What happened to one input: ``done``, ``skipped`` (its output was already there) or ``failed``."""

    source: Path
    output: Path
    status: str
    n_notes: int = 0
    duration_s: float = 0.0
    invalid_tokens: int = 0
    error: str | None = None
    exit_code: int = 0  # of a failure: the AmtError's code, 1 for system errors, 70 for a bug in amt
    report: tuple[
        str, ...
    ] = ()  # what was done to the notes before writing (tempo, quantization, pedal), one line each
    warnings: tuple[str, ...] = ()  # AmtWarnings raised while doing it (a truncated file...)


# ------------------------------------------------------------------------------------ planning


def _ext_for(fmt: str) -> str:
    from ..outputs import FORMATS

    for suffix, name in FORMATS.items():
        if name == fmt:
            return suffix
    raise BadInput(f"--format {fmt!r}: choose from {', '.join(dict.fromkeys(FORMATS.values()))}")


def plan_outputs(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    *,
    fmt: str | None = None,
) -> list[tuple[Path, Path]]:
    """(audio file, output file) pairs.

    ``output`` is a file when it has a suffix (one input only; the suffix must be one of
    :data:`amtcli.outputs.FORMATS`), and a folder when it has none, is an existing folder, or ends
    with ``/``: each input's output goes there (folder inputs keep their sub-folders; with several
    inputs, each folder input gets a sub-folder of its name). Without ``output`` each output goes
    beside its input. ``fmt`` picks the format (default: ``-o``'s suffix, else ``mid``).
    """
    from ..audio.io import find_audio_files
    from ..outputs import FORMATS

    inputs = [Path(p) for p in inputs]
    for src in inputs:
        if not src.exists():
            raise BadAudio(f"{src}: no such file or folder")
    text = None if output is None else os.fspath(output)
    out = None if text is None else Path(text)
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    if out is not None and not (text.endswith(("/", os.sep)) or out.is_dir() or not out.suffix):
        suffix = out.suffix.lower()
        if suffix not in FORMATS:
            known = ", ".join(FORMATS)
            raise BadInput(
                f"-o {out}: unknown output format {out.suffix!r} (known: {known}; a folder name has no suffix or ends with /)"
            )
        if not single_file:
            raise BadInput(
                f"-o {out} names one file, but the input is {'a folder' if len(inputs) == 1 else f'{len(inputs)} inputs'}; give a folder"
            )
        if fmt and FORMATS[suffix] != fmt:
            raise BadInput(f"-o {out} does not match --format {fmt}")
        return [(inputs[0], out)]
    ext = _ext_for(fmt or "mid")
    pairs = []
    for src in inputs:
        if src.is_dir():
            files = find_audio_files([src])
            if not files:
                raise BadAudio(f"{src}: no audio files in this folder")
            for f in files:
                rel = f.relative_to(src).with_suffix(ext)
                if out is None:
                    pairs.append((f, f.with_suffix(ext)))
                else:
                    pairs.append((f, (out / src.name / rel) if len(inputs) > 1 else out / rel))
        else:
            pairs.append((src, (out / src.with_suffix(ext).name) if out is not None else src.with_suffix(ext)))
    return pairs


def _can_write_in(folder: Path) -> str | None:
    """Why files cannot be created under ``folder`` (made if needed), or ``None``."""
    import tempfile

    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"{probe}: {exc.strerror or exc}"
    return None


def check_outputs(
    pairs: Sequence[tuple[Path, Path]],
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    extra_suffixes: Sequence[str] = (),
) -> None:
    """Refuse, before any work, a plan that would lose something or cannot be written.

    - an output that is an input (or another input's output);
    - outputs that exist, unless ``overwrite`` or ``skip_existing``;
    - outputs whose folder cannot be created or written (tried with a temporary file).

    ``extra_suffixes``: files written beside each output (``.png`` for ``--plot``), checked too;
    with ``skip_existing``, the extras of an output that is (re)done are replaced (they are that
    output's own, left by an interrupted run: the extras are written before the output).
    Raises :class:`BadInput` or :class:`OutputExists` with one line naming the first few paths.
    """
    if overwrite and skip_existing:
        raise BadInput("--overwrite and --skip-existing contradict each other; choose one")
    sources = {os.path.realpath(src): src for src, _ in pairs}
    seen: dict[str, Path] = {}
    for src, dst in pairs:
        for path in [dst, *(dst.with_suffix(s) for s in extra_suffixes)]:
            real = os.path.realpath(path)
            if real in sources:
                raise BadInput(
                    f"output {path} is also an input ({sources[real]}); it would be overwritten. Choose another -o"
                )
            if real in seen:
                raise BadInput(
                    f"{seen[real]} and {src} would both write {path}; transcribe them into different folders"
                )
            seen[real] = src
    exists = [dst for _, dst in pairs if dst.exists()]
    if not skip_existing:  # an output that is redone replaces its own extras; anything else is refused
        exists += [
            extra for _, dst in pairs for extra in (dst.with_suffix(s) for s in extra_suffixes) if extra.exists()
        ]
    folders = [dst for dst in exists if dst.is_dir()]
    if folders:
        raise BadInput(f"{folders[0]} is a folder where an output file would go")
    if exists and not overwrite and not skip_existing:
        more = f" and {len(exists) - 1} more" if len(exists) > 1 else ""
        hint = "use --overwrite to replace" + (
            " them, or --skip-existing to keep them and do the rest" if len(pairs) > 1 else " it"
        )
        raise OutputExists(f"{exists[0]}{more} already exist{'s' if len(exists) == 1 else ''} ({hint})")
    problems: dict[Path, str] = {}
    for folder in dict.fromkeys(dst.parent for _, dst in pairs):
        reason = _can_write_in(folder)
        if reason is not None:
            problems[folder] = reason
    if problems:
        first, reason = next(iter(problems.items()))
        more = f" (and {len(problems) - 1} more folder(s))" if len(problems) > 1 else ""
        raise BadInput(f"cannot write outputs in {first}: {reason}{more}")


# ---------------------------------------------------------------------------------- one file


def transcribe_to_file(
    source: Path,
    output: Path,
    *,
    model,
    release,
    model_name: str,
    device: str = "cpu",
    decode: DecodeConfig | None = None,
    chunk_s: float = CHUNK_S,
    precision: str | None = None,
    plot: bool = False,
    output_options=None,
) -> FileOutcome:
    """Transcribe ``source`` with a loaded ``model`` and write ``output`` (format by its suffix).

    The piano roll (``plot``) is written first and the notes file last, so an output that exists
    is complete with its extras (``--skip-existing`` can trust it). :class:`AmtWarning` s are
    collected into the outcome (they travel back from worker processes with it). Raises on failure.
    """
    import warnings

    from ..outputs import OutputOptions, format_for, plot_transcription, write_transcription
    from .transcribe import transcribe_full

    fc = model.feature_config
    tokens_model = getattr(model, "output_kind", "frames") == "tokens"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AmtWarning)
        result = transcribe_full(
            source,
            model=(model, release),
            device=device,
            decode=decode,
            chunk_s=chunk_s,
            precision=precision,
            keep_features=plot,
        )
    for w in caught:
        if not issubclass(w.category, AmtWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    said = tuple(str(w.message) for w in caught if issubclass(w.category, AmtWarning))
    meta = {"source": str(source), "model": model_name}
    if tokens_model:
        meta["invalid_tokens"] = result.invalid_tokens
    if plot:
        plot_transcription(
            output.with_suffix(".png"),
            features=result.features,
            notes=result.notes,
            frame_rate=fc.frame_rate,
            bins_per_semitone=fc.bins_per_semitone,
            fmin_midi=fc.fmin_midi,
        )
    written = write_transcription(
        result, output, fmt=format_for(output), options=output_options or OutputOptions(), meta=meta
    )
    return FileOutcome(
        source,
        output,
        "done",
        written.n_notes,
        result.duration_s,
        result.invalid_tokens,
        warnings=said,
        report=tuple(written.lines),
    )


def _failure(source: Path, output: Path, exc: BaseException) -> FileOutcome:
    code = 1
    if isinstance(exc, AmtError):
        reason, code = str(exc), exc.exit_code
    elif isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        reason = f"{where}{exc.strerror or exc}"
    elif isinstance(exc, MemoryError):
        reason = f"{source}: out of memory (try a smaller --chunk-s or fewer --jobs)"
    else:
        reason, code = f"{source}: internal error: {type(exc).__name__}: {exc} (set AMT_DEBUG=1 for a traceback)", 70
    return FileOutcome(source, output, "failed", error=reason, exit_code=code)


# ------------------------------------------------------------------------------------ workers

_WORKER: dict = {}


def _init_worker(
    parent_pid: int, folder: str, model_name: str, device: str, threads: int, options: dict, backend: str = "torch"
) -> None:
    from ..workers import die_with_parent

    die_with_parent(parent_pid)
    # numpy's BLAS (the CQT) reads its thread count once, when numpy loads: nothing has loaded it yet here
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from .backends import load_transcriber

    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    model, release = load_transcriber(folder, backend=backend, device=device, threads=threads)
    _WORKER.update(model=model, release=release, model_name=model_name, device=device, options=options)


def _work(pair: tuple[Path, Path]) -> FileOutcome:
    source, output = pair
    w = _WORKER
    try:
        return transcribe_to_file(
            source,
            output,
            model=w["model"],
            release=w["release"],
            model_name=w["model_name"],
            device=w["device"],
            **w["options"],
        )
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch; the reason travels back
        return _failure(source, output, exc)


# -------------------------------------------------------------------------------------- batch


def transcribe_files(
    pairs: Sequence[tuple[Path, Path]],
    *,
    model: str,
    device: str = "cpu",
    decode: DecodeConfig | None = None,
    chunk_s: float = CHUNK_S,
    precision: str | None = None,
    plot: bool = False,
    output_options=None,
    skip_existing: bool = False,
    jobs: int = 1,
    backend: str = "auto",
    loaded=None,
    on_result: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """Transcribe every pair; a file that fails is reported, never the end of the batch.

    ``model``: the spec (name, folder, ``hf://``) as given, recorded in JSON outputs. ``loaded``:
    ``(model, release, folder)`` already loaded by the caller (the model is then not loaded again
    in this process). With ``jobs > 1``, ``min(jobs, files)`` worker processes each load the model
    once; a worker that dies (killed, out of memory) is replaced and its file tried once more, then
    reported as failed. ``backend``: auto, torch or onnx (:func:`~amtcli.inference.backends.choose_backend`;
    ignored with ``loaded``). ``on_result(outcome)`` is called as each file finishes. Returns the
    outcomes in the order of ``pairs``.
    """
    from ..zoo import read_release_config, resolve
    from .backends import OnnxTranscriber, choose_backend, load_transcriber

    outcomes: list[FileOutcome | None] = [None] * len(pairs)
    todo = []
    for i, (src, dst) in enumerate(pairs):
        if skip_existing and dst.exists():
            outcomes[i] = FileOutcome(src, dst, "skipped")
            if on_result:
                on_result(outcomes[i])
        else:
            todo.append(i)
    jobs = max(1, min(jobs, len(todo)))
    if loaded is not None:
        net, release, folder = loaded
        backend = "onnx" if isinstance(net, OnnxTranscriber) else "torch"
    else:
        folder = resolve(model)
        release = read_release_config(folder)
        backend = choose_backend(
            backend, device=device, folder=folder, architecture=release.architecture, precision=precision
        ).name
        if jobs == 1:
            net, release = load_transcriber(folder, backend=backend, device=device, release=release)
        # else each worker loads the model; this process only needs to know where it is and how to run it
    options = {
        "decode": decode,
        "chunk_s": chunk_s,
        "precision": precision,
        "plot": plot,
        "output_options": output_options,
    }

    def finish(i: int, outcome: FileOutcome) -> None:
        outcomes[i] = outcome
        if on_result:
            on_result(outcome)

    if jobs == 1:
        for i in todo:
            src, dst = pairs[i]
            try:
                outcome = transcribe_to_file(
                    src, dst, model=net, release=release, model_name=model, device=device, **options
                )
            except Exception as exc:  # noqa: BLE001 - reported per file; the batch goes on
                if os.environ.get("AMT_DEBUG"):
                    raise
                outcome = _failure(src, dst, exc)
            finish(i, outcome)
        return outcomes  # type: ignore[return-value]
    _run_pool(
        pairs,
        todo,
        folder=Path(folder),
        model=model,
        device=device,
        backend=backend,
        options=options,
        jobs=jobs,
        finish=finish,
    )
    return outcomes  # type: ignore[return-value]


def _run_pool(
    pairs, todo: list[int], *, folder: Path, model: str, device: str, backend: str, options: dict, jobs: int, finish
) -> None:
    """Run ``todo`` (indices into ``pairs``) on ``jobs`` spawned workers, one file in flight per worker,
    so that when a worker dies the files it may have been working on are known."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from ..workers import threads_per_worker

    queue = deque(todo)
    strikes: dict[int, int] = {}
    threads = threads_per_worker(jobs)
    initargs = (os.getpid(), str(folder.resolve()), model, device, threads, options, backend)
    while queue:
        inflight: dict = {}
        with ProcessPoolExecutor(
            jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=initargs
        ) as pool:
            try:
                while queue or inflight:
                    while queue and len(inflight) < jobs:
                        i = queue.popleft()
                        inflight[pool.submit(_work, pairs[i])] = i
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcome = future.result()  # BrokenProcessPool if a worker died
                        finish(inflight.pop(future), outcome)
            except BrokenProcessPool:
                for future, i in inflight.items():
                    if future.done() and not future.cancelled() and future.exception() is None:
                        finish(i, future.result())  # finished before the worker died
                        continue
                    strikes[i] = strikes.get(i, 0) + 1
                    if strikes[i] >= 2:
                        src, dst = pairs[i]
                        finish(
                            i,
                            FileOutcome(
                                src,
                                dst,
                                "failed",
                                error=f"{src}: the worker process died twice while transcribing it (out of memory?)",
                            ),
                        )
                    else:
                        queue.appendleft(i)
