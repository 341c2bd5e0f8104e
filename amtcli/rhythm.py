"""Beats, bars and the grid: beat tracking, meter and downbeat estimates, quantization, MIDI tempo maps.

Pure numpy, no torch, no I/O. A :class:`BeatGrid` holds beat times in seconds; a position on the grid
is a *beat position*, a float where ``k`` is the ``k``-th beat and ``k + 0.5`` half way to the next
(linear in time between two beats, extrapolated with the first/last beat period outside them).

Beat tracking follows Ellis (2007), the dynamic program librosa's ``beat_track`` uses: a tempo is
estimated from the autocorrelation of an onset-strength envelope (with a log-normal prior around
120 BPM), then the beat sequence that best balances landing on strong onsets against keeping the
period is found by dynamic programming. It is reimplemented here in numpy because librosa's
version is compiled by numba: from a new process to its first beat, 172 s with an empty numba cache
and 36 s with a filled one, against 1.4 s for this module (``benchmarks/beats_eval.py --startup``,
2 shared cores under load), a cost every ``amt transcribe`` would pay. ``benchmarks/beats_eval.py``
also scores both trackers on the same material (this one is more accurate there).

Downbeats and meter come from the notes: for 2, 3 and 4 beats per bar and every phase, how much
more the beats at bar starts carry (note onsets, bass notes, long notes, harmonic change) than the
beats in between; the best (meter, phase) wins. Meters are simple (x/4): a 6/8 piece is tracked
in dotted quarters and written as 2/4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BadInput
from .notes import NoteArray

DEFAULT_BPM = 120.0


# ------------------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class BeatGrid:
    """Beat times and the bar structure over them.

    ``beats_s``: float64 ``(n_beats,)``, strictly increasing, at least 2 beats.
    ``beats_per_bar``: the time signature's numerator (its denominator is 4).
    ``first_downbeat``: index into ``beats_s`` of the first beat that starts a bar (0 .. beats_per_bar-1;
    the beats before it are a pickup). ``tracked``: whether the beats came from the audio (False:
    a fixed tempo, e.g. ``--tempo``).
    """

    beats_s: np.ndarray
    beats_per_bar: int = 4
    first_downbeat: int = 0
    tracked: bool = True

    def __post_init__(self):
        b = np.asarray(self.beats_s, dtype=np.float64).reshape(-1)
        if len(b) < 2 or not np.all(np.diff(b) > 0):
            raise BadInput("a beat grid needs at least 2 strictly increasing beat times")
        if self.beats_per_bar not in (2, 3, 4, 5, 6, 7, 8, 9, 12):
            raise BadInput(f"beats per bar must be one of 2-9 or 12, not {self.beats_per_bar}")
        if not 0 <= self.first_downbeat < self.beats_per_bar:
            raise BadInput(f"first_downbeat must be in 0..{self.beats_per_bar - 1}")
        object.__setattr__(self, "beats_s", b)

    @property
    def tempo_bpm(self) -> float:
        """The median tempo."""
        return float(60.0 / np.median(np.diff(self.beats_s)))

    @property
    def downbeats_s(self) -> np.ndarray:
        """Times of the beats that start bars, ``(n_bars,)``."""
        return self.beats_s[self.first_downbeat :: self.beats_per_bar]

    @property
    def time_signature(self) -> str:
        return f"{self.beats_per_bar}/4"

    def to_beats(self, times_s) -> np.ndarray:
        """Seconds -> beat positions (same shape)."""
        t = np.asarray(times_s, dtype=np.float64)
        b = self.beats_s
        idx = np.arange(len(b), dtype=np.float64)
        pos = np.interp(t, b, idx)
        first, last = b[1] - b[0], b[-1] - b[-2]
        pos = np.where(t < b[0], (t - b[0]) / first, pos)
        return np.where(t > b[-1], len(b) - 1 + (t - b[-1]) / last, pos)

    def to_seconds(self, positions) -> np.ndarray:
        """Beat positions -> seconds (same shape); the inverse of :meth:`to_beats`."""
        p = np.asarray(positions, dtype=np.float64)
        b = self.beats_s
        idx = np.arange(len(b), dtype=np.float64)
        t = np.interp(p, idx, b)
        first, last = b[1] - b[0], b[-1] - b[-2]
        t = np.where(p < 0, b[0] + p * first, t)
        return np.where(p > len(b) - 1, b[-1] + (p - (len(b) - 1)) * last, t)

    def lead_in_beats(self) -> int:
        """Whole beats given to the time before the first beat (0 when it is at time 0).

        The stretch from 0 s to the first beat is counted as this many beats of its own tempo, so
        that the file's beat 0 is at 0 s while the tracked beats stay on whole beats."""
        b0 = float(self.beats_s[0])
        if b0 <= 1e-3:
            return 0
        return max(1, int(round(b0 / (self.beats_s[1] - self.beats_s[0]))))

    def pickup_beats(self) -> int:
        """Beats before the first bar line, counted from 0 s (0: the music starts on a bar line)."""
        return (self.lead_in_beats() + self.first_downbeat) % self.beats_per_bar


def fixed_grid(tempo_bpm: float, *, duration_s: float, start_s: float = 0.0, beats_per_bar: int = 4) -> BeatGrid:
    """A constant tempo from ``start_s`` (a downbeat) to at least ``duration_s``."""
    if not (np.isfinite(tempo_bpm) and 10.0 <= tempo_bpm <= 400.0):
        raise BadInput(f"tempo must be between 10 and 400 BPM, not {tempo_bpm}")
    period = 60.0 / tempo_bpm
    n = max(2, int(np.ceil((max(duration_s, start_s) - start_s) / period)) + 2)
    return BeatGrid(start_s + period * np.arange(n), beats_per_bar=beats_per_bar, first_downbeat=0, tracked=False)


# -------------------------------------------------------------------------------- onset strength


def onset_strength_from_features(features: np.ndarray) -> np.ndarray:
    """Spectral flux of a log-magnitude spectrogram ``(n_frames, n_bins)`` -> ``(n_frames,)``:
    the mean over bins of the positive frame-to-frame increase (0 for the first frame)."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2:
        raise BadInput(f"features must be (n_frames, n_bins), got shape {f.shape}")
    env = np.zeros(len(f), np.float64)
    if len(f) > 1:
        env[1:] = np.maximum(0.0, np.diff(f, axis=0)).mean(axis=1)
    return env


def onset_strength_from_notes(notes: NoteArray, *, n_frames: int, frame_rate: float) -> np.ndarray:
    """Note onsets as an envelope ``(n_frames,)``: each onset adds its velocity / 127 at its frame."""
    env = np.zeros(max(0, n_frames), np.float64)
    if not len(notes) or n_frames <= 0:
        return env
    idx = np.clip(np.rint(notes.onset_s * frame_rate).astype(np.int64), 0, n_frames - 1)
    np.add.at(env, idx, notes.velocity / 127.0)
    return env


# ---------------------------------------------------------------------------------- beat tracking


def estimate_tempo(
    onset_strength: np.ndarray,
    *,
    frame_rate: float,
    prior_bpm: float = DEFAULT_BPM,
    prior_octaves: float = 1.0,
    min_bpm: float = 30.0,
    max_bpm: float = 300.0,
) -> float:
    """The global tempo (BPM) of an onset envelope ``(n_frames,)``: the autocorrelation peak,
    weighted by a log-normal prior around ``prior_bpm`` (``prior_octaves`` wide), refined to a
    fraction of a frame by parabolic interpolation. ``prior_bpm`` when the envelope is flat."""
    x = np.asarray(onset_strength, dtype=np.float64)
    n = len(x)
    lo = max(1, int(np.floor(60.0 * frame_rate / max_bpm)))
    hi = int(np.ceil(60.0 * frame_rate / min_bpm))
    if n < 2 * lo + 2 or not np.any(x > 0):
        return float(prior_bpm)
    x = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x, size)
    ac = np.fft.irfft(spec * np.conj(spec), size)[:n]
    ac /= np.arange(n, 0, -1)  # unbiased
    hi = min(hi, n - 2)
    lags = np.arange(lo, hi + 1)
    bpm = 60.0 * frame_rate / lags
    weight = np.exp(-0.5 * (np.log2(bpm / prior_bpm) / prior_octaves) ** 2)
    score = ac[lags] * weight
    k = int(np.argmax(score))
    lag = float(lags[k])
    if 0 < k < len(lags) - 1:
        a, b, c = score[k - 1], score[k], score[k + 1]
        denom = a - 2 * b + c
        if denom < 0:
            lag += float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return float(60.0 * frame_rate / lag)


def _dp_beats(env: np.ndarray, period: float, tightness: float) -> np.ndarray:
    """Ellis' dynamic program: beat frame indices ``(n_beats,)`` for a normalised envelope."""
    n = len(env)
    cum = np.zeros(n)
    back = np.full(n, -1, np.int64)
    thresh = 0.01 * env.max()
    lo_off = int(round(2 * period))
    hi_off = max(1, int(round(period / 2)))
    offsets = np.arange(lo_off, hi_off - 1, -1)  # how far back the previous beat may be
    penalty = -tightness * np.log(offsets / period) ** 2
    started = False
    for t in range(n):
        prev = t - offsets
        # a predecessor before the start counts as a beat with nothing accumulated (as in librosa)
        cand = np.where(prev >= 0, cum[np.maximum(prev, 0)], 0.0) + penalty
        j = int(np.argmax(cand))
        cum[t] = env[t] + cand[j]
        if started or env[t] >= thresh:
            back[t] = prev[j] if prev[j] >= 0 else -1
            started = True
    # the last beat: the last local maximum of the cumulative score above half the median peak
    peaks = np.nonzero((cum[1:-1] > cum[:-2]) & (cum[1:-1] >= cum[2:]))[0] + 1
    if not len(peaks):
        return np.zeros(0, np.int64)
    good = peaks[cum[peaks] >= 0.5 * np.median(cum[peaks])]
    t = int(good[-1])
    beats = [t]
    while back[t] >= 0:
        t = int(back[t])
        beats.append(t)
    return np.array(beats[::-1], np.int64)


def track_beats(
    onset_strength: np.ndarray,
    *,
    frame_rate: float,
    tempo_bpm: float | None = None,
    tightness: float = 100.0,
) -> np.ndarray:
    """Beat times in seconds ``(n_beats,)`` from an onset envelope ``(n_frames,)`` at ``frame_rate``.

    ``tempo_bpm`` fixes the period the tracker aims for (default: :func:`estimate_tempo`).
    Weak beats at the start and end (where the smoothed envelope is below half its RMS) are
    dropped, as librosa does; each beat is then placed to a fraction of a frame (the peak of a
    parabola through the smoothed envelope). Empty when the envelope is silent.
    """
    env = np.asarray(onset_strength, dtype=np.float64)
    if env.ndim != 1:
        raise BadInput(f"onset strength must be (n_frames,), got shape {env.shape}")
    if len(env) < 4 or env.std() <= 0:
        return np.zeros(0)
    bpm = tempo_bpm if tempo_bpm is not None else estimate_tempo(env, frame_rate=frame_rate)
    period = 60.0 * frame_rate / bpm
    norm = env / env.std(ddof=1)
    # local score: the envelope smoothed with a Gaussian period/32 wide (librosa's choice)
    half = max(1, int(round(period / 32.0)) * 4)
    w = np.exp(-0.5 * (np.arange(-half, half + 1) * 32.0 / period) ** 2)
    local = np.convolve(norm, w, mode="same")
    frames = _dp_beats(local, period, tightness)
    if len(frames):
        smooth = np.convolve(local, np.hanning(int(round(period)) + 2), mode="same")
        thresh = 0.5 * np.sqrt(np.mean(smooth**2))
        keep = smooth[frames] >= thresh
        if keep.any():
            first, last = np.nonzero(keep)[0][[0, -1]]
            frames = frames[first : last + 1]
        else:
            frames = frames[:0]
    # to a fraction of a frame: the vertex of a parabola through the local score around each beat
    pos = frames.astype(np.float64)
    inner = (frames > 0) & (frames < len(local) - 1)
    if inner.any():
        f = frames[inner]
        a, b, c = local[f - 1], local[f], local[f + 1]
        denom = a - 2 * b + c
        safe = np.where(denom < 0, denom, -1.0)
        pos[inner] += np.where(denom < 0, np.clip(0.5 * (a - c) / safe, -0.5, 0.5), 0.0)
    return np.sort(pos) / frame_rate


# ------------------------------------------------------------------------------- meter/downbeats


def _chroma_between(notes: NoteArray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Pitch-class profile ``(n, 12)`` of the notes sounding in each ``[start, end)`` (overlap in s)."""
    out = np.zeros((len(starts), 12))
    for on, off, p in zip(notes.onset_s, notes.offset_s, notes.pitch):
        ov = np.minimum(ends, off) - np.maximum(starts, on)
        out[:, p % 12] += np.maximum(ov, 0.0)
    return out


def beat_accents(notes: NoteArray, beats_s: np.ndarray) -> np.ndarray:
    """What each beat carries, ``(n_beats, 4)``: onset weight (sum of velocity / 127 of notes that
    start within a quarter period of it), bass weight (the same for notes below the median pitch
    of the piece), length (the longest note starting there, in beats) and harmonic change
    (1 - cosine similarity of the pitch classes sounding in this beat and in the one before)."""
    b = np.asarray(beats_s, dtype=np.float64)
    n = len(b)
    out = np.zeros((n, 4))
    if n < 2 or not len(notes):
        return out
    period = np.diff(b)
    period = np.concatenate([period, period[-1:]])
    tol = 0.25 * period
    order = np.argsort(notes.onset_s)
    on = notes.onset_s[order]
    pitch = notes.pitch[order]
    vel = notes.velocity[order] / 127.0
    dur = (notes.offset_s - notes.onset_s)[order]
    median_pitch = np.median(pitch)
    lo = np.searchsorted(on, b - tol, side="left")
    hi = np.searchsorted(on, b + tol, side="right")
    for i in range(n):
        sel = slice(lo[i], hi[i])
        if hi[i] > lo[i]:
            out[i, 0] = vel[sel].sum()
            out[i, 1] = vel[sel][pitch[sel] < median_pitch].sum()
            out[i, 2] = dur[sel].max() / period[i]
    chroma = _chroma_between(notes, b, b + period)
    norm = np.linalg.norm(chroma, axis=1) + 1e-9
    sim = (chroma[1:] * chroma[:-1]).sum(axis=1) / (norm[1:] * norm[:-1])
    out[1:, 3] = 1.0 - sim
    out[0, 3] = 1.0 if chroma[0].sum() > 0 else 0.0
    return out


# weights of the accent features (onset, bass, length, harmonic change) in the meter score, set by
# hand (bass and harmonic change mark bar starts most in tonal music); benchmarks/beats_eval.py measures them
ACCENT_WEIGHTS = (0.5, 1.0, 1.0, 1.0)


def estimate_meter(
    notes: NoteArray,
    beats_s: np.ndarray,
    *,
    meters: tuple[int, ...] = (4, 3, 2),
    weights: tuple[float, float, float, float] = ACCENT_WEIGHTS,
) -> tuple[int, int]:
    """``(beats_per_bar, first_downbeat)`` for ``notes`` over ``beats_s`` ``(n_beats,)``.

    Each accent feature (:func:`beat_accents`) is standardised over the beats; a (meter, phase)
    scores the weighted mean of the features on its downbeats minus their mean elsewhere. The first
    of ``meters`` wins ties; ``(meters[0], 0)`` when there is too little to go on.
    """
    b = np.asarray(beats_s, dtype=np.float64)
    if len(b) < 2 * max(meters) or not len(notes):
        return meters[0], 0
    acc = beat_accents(notes, b)
    sd = acc.std(axis=0)
    z = (acc - acc.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    s = z @ np.asarray(weights, dtype=np.float64)
    best = (-np.inf, meters[0], 0)
    for m in meters:
        for p in range(m):
            on = np.zeros(len(s), bool)
            on[p::m] = True
            score = s[on].mean() - s[~on].mean()
            if score > best[0] + 1e-9:
                best = (score, m, p)
    return best[1], best[2]


def extend_beats(beats_s: np.ndarray, notes: NoteArray) -> np.ndarray:
    """Beats ``(n,)`` continued at the first (last) beat period back to the first note and on to
    the last onset (never before 0 s), so every note has beats around it; the tracker drops weak
    beats at the edges."""
    b = list(np.asarray(beats_s, dtype=np.float64))
    if len(b) < 2 or not len(notes):
        return np.asarray(b)
    first, last = float(notes.onset_s.min()), float(notes.onset_s.max())
    p0, p1 = b[1] - b[0], b[-1] - b[-2]
    head = []
    t = b[0] - p0
    while t >= 0 and t > first - 0.5 * p0:
        head.append(t)
        t -= p0
    tail = []
    t = b[-1] + p1
    while t < last + 0.5 * p1:
        tail.append(t)
        t += p1
    return np.array(head[::-1] + b + tail)


def estimate_grid(
    notes: NoteArray,
    *,
    onset_strength: np.ndarray | None = None,
    frame_rate: float = 31.25,
    duration_s: float | None = None,
    tempo_bpm: float | None = None,
    beats_per_bar: int | None = None,
) -> BeatGrid:
    """Beats and bars for a transcription.

    With ``tempo_bpm`` the grid is that constant tempo, starting at the first note (a downbeat).
    Otherwise beats are tracked on ``onset_strength`` ``(n_frames,)`` (default: the notes' onsets,
    :func:`onset_strength_from_notes`) and continued to the first and last notes
    (:func:`extend_beats`). The meter and the first downbeat come from the notes
    (:func:`estimate_meter`) unless ``beats_per_bar`` is given (then only the phase is estimated).
    When fewer than 4 beats are found the grid falls back to 120 BPM from the first note.
    """
    end = duration_s if duration_s is not None else (notes.end_s if len(notes) else 0.0)
    start = float(notes.onset_s.min()) if len(notes) else 0.0
    meters = (beats_per_bar,) if beats_per_bar else (4, 3, 2)
    if tempo_bpm is not None:
        grid = fixed_grid(tempo_bpm, duration_s=end, start_s=start, beats_per_bar=meters[0])
        return grid
    if onset_strength is None:
        onset_strength = onset_strength_from_notes(
            notes, n_frames=int(np.ceil(end * frame_rate)) + 1, frame_rate=frame_rate
        )
    beats = track_beats(onset_strength, frame_rate=frame_rate)
    if len(beats) < 4:
        return fixed_grid(DEFAULT_BPM, duration_s=end, start_s=start, beats_per_bar=meters[0])
    beats = extend_beats(beats, notes)
    m, p = estimate_meter(notes, beats, meters=meters)
    return BeatGrid(beats, beats_per_bar=m, first_downbeat=p, tracked=True)


# --------------------------------------------------------------------------------- quantization


def parse_quantize(spec: str) -> tuple[int, ...]:
    """A grid spec -> steps per beat (a beat is a quarter note), one per allowed grid.

    ``"1/16"`` -> ``(4,)``; ``"1/8t"`` (eighth triplets) -> ``(3,)``; ``"1/16,1/8t"`` -> ``(4, 3)``:
    each beat takes whichever of the grids moves its onsets least (the first on ties).
    """
    steps = []
    for part in str(spec).replace(" ", "").split(","):
        triplet = part.endswith("t")
        body = part[:-1] if triplet else part
        num, _, den = body.partition("/")
        if num != "1" or not den.isdigit() or int(den) not in (1, 2, 4, 8, 16, 32, 64):
            raise BadInput(
                f"--quantize {spec!r}: use 1/4, 1/8, 1/16 or 1/32, optionally with t for triplets (1/8t), comma-separated"
            )
        per_beat = int(den) / 4 * (1.5 if triplet else 1.0)
        if per_beat < 1 or per_beat != int(per_beat):
            raise BadInput(
                f"--quantize {part!r}: the grid must divide a quarter-note beat (1/4 or finer; triplets from 1/8t)"
            )
        steps.append(int(per_beat))
    return tuple(steps)


def grid_label(steps: tuple[int, ...]) -> str:
    """``(4, 3)`` -> ``"1/16,1/8t"`` (the inverse of :func:`parse_quantize`)."""
    out = []
    for s in steps:
        if (4 * s) & (4 * s - 1) == 0:
            out.append(f"1/{4 * s}")
        elif s % 3 == 0 and ((8 * s // 3) & (8 * s // 3 - 1)) == 0:
            out.append(f"1/{8 * s // 3}t")
        else:
            out.append(f"{s} per beat")
    return ",".join(out)


@dataclass(frozen=True)
class QuantizeReport:
    """How far quantization moved the notes (milliseconds, over all notes)."""

    n_notes: int
    onset_mean_ms: float
    onset_max_ms: float
    offset_mean_ms: float
    moved_over_50ms: int  # notes whose onset moved more than 50 ms
    grid: str

    def as_text(self) -> str:
        return (
            f"quantized {self.n_notes} notes to {self.grid}: onsets moved {self.onset_mean_ms:.0f} ms on average "
            f"(at most {self.onset_max_ms:.0f} ms; {self.moved_over_50ms} moved over 50 ms), offsets {self.offset_mean_ms:.0f} ms"
        )


def quantize_positions(
    on: np.ndarray, off: np.ndarray, *, steps: tuple[int, ...] = (4,)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Beat positions of onsets and offsets ``(n,)`` -> the nearest grid points and the grids used,
    ``(q_on, q_off, step_on, step_off)``, each ``(n,)``. Every result is a multiple of
    ``1 / lcm(steps)``.

    Per beat, the grid of ``steps`` (points per beat) that moves the onsets in that beat least is
    used for them and for the offsets that fall in that beat (beats without onsets use
    ``steps[0]``). Offsets stay at least one step (``1 / step``) after their onset.
    """
    if not steps or any(int(s) != s or s < 1 for s in steps):
        raise BadInput("quantize steps must be positive integers")
    on = np.asarray(on, dtype=np.float64)
    off = np.asarray(off, dtype=np.float64)
    beat_of = np.floor(on).astype(np.int64)
    choice: dict[int, int] = {}
    for b in np.unique(beat_of):
        x = on[beat_of == b]
        errs = [np.abs(x * s - np.rint(x * s)).sum() / s for s in steps]
        choice[int(b)] = steps[int(np.argmin(errs))]

    def per(pos: np.ndarray) -> np.ndarray:
        return np.array([choice.get(int(np.floor(p)), steps[0]) for p in pos], dtype=np.float64).reshape(len(pos))

    s_on = per(on)
    q_on = np.rint(on * s_on) / s_on
    s_off = per(off)
    q_off = np.maximum(np.rint(off * s_off) / s_off, q_on + 1.0 / s_on)
    return q_on, q_off, s_on, s_off


def quantize_notes(
    notes: NoteArray, grid: BeatGrid, *, steps: tuple[int, ...] = (4,), spec: str | None = None
) -> tuple[NoteArray, QuantizeReport]:
    """Move onsets, offsets and key releases to the nearest grid point (:func:`quantize_positions`).

    ``steps``: grid points per beat (:func:`parse_quantize`). Every note keeps at least one grid
    step; where two notes of one pitch would then overlap, the first ends where the second starts,
    and of two notes of one pitch on the same onset only the longer is kept. Returns the quantized
    notes (times in seconds, on the grid) and a :class:`QuantizeReport`.
    """
    label = spec or grid_label(steps)
    if not len(notes):
        quantize_positions(np.zeros(0), np.zeros(0), steps=steps)  # validates steps
        return notes, QuantizeReport(0, 0.0, 0.0, 0.0, 0, label)
    notes = notes.sorted()
    q_on, q_off, s_on, s_off = quantize_positions(
        grid.to_beats(notes.onset_s), grid.to_beats(notes.offset_s), steps=steps
    )
    q_rel = np.clip(np.rint(grid.to_beats(notes.release_s) * s_off) / s_off, q_on + 1.0 / s_on, q_off)
    # one note per (pitch, program, onset): keep the longest
    keep = np.ones(len(notes), bool)
    key = np.stack([notes.pitch, notes.program, np.rint(q_on * 192).astype(np.int64)], axis=1)
    order = np.lexsort((-q_off, key[:, 2], key[:, 1], key[:, 0]))
    prev = None
    for i in order:
        k = tuple(key[i])
        if k == prev:
            keep[i] = False
        prev = k
    # same pitch: end where the next one starts
    for p, prog in set(zip(notes.pitch[keep].tolist(), notes.program[keep].tolist())):
        sel = np.nonzero(keep & (notes.pitch == p) & (notes.program == prog))[0]
        sel = sel[np.argsort(q_on[sel], kind="stable")]
        for a, b in zip(sel[:-1], sel[1:]):
            if q_off[a] > q_on[b]:
                q_off[a] = q_on[b]
                q_rel[a] = min(q_rel[a], q_on[b])
    t_on = grid.to_seconds(q_on)
    t_off = grid.to_seconds(q_off)
    t_rel = grid.to_seconds(q_rel)
    moved_on = np.abs(t_on - notes.onset_s)[keep] * 1000
    moved_off = np.abs(t_off - notes.offset_s)[keep] * 1000
    out = NoteArray(t_on, t_off, notes.pitch, notes.velocity, notes.program, notes.confidence, t_rel)[keep].sorted()
    report = QuantizeReport(
        n_notes=int(keep.sum()),
        onset_mean_ms=float(moved_on.mean()),
        onset_max_ms=float(moved_on.max()),
        offset_mean_ms=float(moved_off.mean()),
        moved_over_50ms=int((moved_on > 50).sum()),
        grid=label,
    )
    return out, report


# ------------------------------------------------------------------------------------ MIDI maps


def midi_tempo_map(
    grid: BeatGrid, *, resolution: int = 960, end_s: float | None = None
) -> tuple[list[tuple[int, float]], list[tuple[int, int, int]]]:
    """The grid as a MIDI tempo map: ``([(tick, seconds_per_tick), ...], [(numerator, denominator, tick), ...])``.

    Tick 0 is 0 s and every beat of the grid lands on a whole quarter note, so notes keep their real
    times and the bars of a DAW line up with the music. The time before the first beat counts as
    :meth:`BeatGrid.lead_in_beats` beats of its own tempo; a pickup becomes a short first bar
    (e.g. 1/4 before 4/4). Tempos are whole microseconds per quarter, as the file stores them.
    Beats past the last one continue at the last tempo (to ``end_s``, for the time signature only).
    """
    b = grid.beats_s
    lead = grid.lead_in_beats()
    scales: list[tuple[int, float]] = []

    def us(seconds: float) -> int:
        return max(1, int(round(seconds * 1e6)))

    # a hair over the whole microsecond, so that pretty_midi's int() writes exactly that tempo
    def scale(us_per_beat: int) -> float:
        return (us_per_beat + 0.01) / 1e6 / resolution

    if lead:
        scales.append((0, scale(us(b[0] / lead))))
    for i in range(len(b) - 1):
        scales.append(((lead + i) * resolution, scale(us(b[i + 1] - b[i]))))
    # merge repeats
    merged: list[tuple[int, float]] = []
    for tick, s in scales:
        if merged and abs(merged[-1][1] - s) < 1e-15:
            continue
        merged.append((tick, s))
    pickup = grid.pickup_beats()
    signatures = []
    if pickup:
        signatures.append((pickup, 4, 0))
    signatures.append((grid.beats_per_bar, 4, pickup * resolution))
    return merged, signatures
