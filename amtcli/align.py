"""Score to performance: align a score's notes to a transcription's posteriors, and correct a
transcription with an aligned score. Pure numpy (plus librosa's DTW and a numba kernel): no
torch, no I/O, no model knowledge; :mod:`amtcli.inference.score_informed` runs the model.

Alignment (:func:`align_notes`):

1. Both sides become the same features, one vector per frame at the transcriber's frame rate: the
   performance's frame and onset posteriors ``(n_frames, 88)`` each, the score's piano roll and
   onset roll (:func:`amtcli.notes.notes_to_rolls`), onsets spread over three frames on both sides,
   plus one constant "silence" component, each frame scaled to unit length (cost: 1 - cosine).
2. Dynamic time warping between them. When the full cost matrix would exceed ``max_cells``, the
   features are averaged over ``k`` frames, the coarse matrix is aligned with librosa's DTW
   (:func:`librosa.sequence.dtw`), and the path is refined at full resolution inside a band of
   ``band_frames`` around the coarse path (multiscale DTW, as in Müller et al.'s MrMsDTW), so
   memory stays linear in the length.
3. Each score time maps to the first performance frame the path reaches at that score frame.
   Each note's onset is then moved to the nearest peak of its key's onset posterior within
   ``snap_s`` when that peak reaches ``snap_threshold`` (one peak per note; per key in time
   order): the performance's own onset, to a fraction of a frame (parabolic interpolation).

Correction (:func:`correct_transcription`), the audio always winning where the two disagree:

- a transcribed note with an aligned score note of its key within ``match_s`` is kept as played;
- a transcribed note without one is kept only when its onset probability (``confidence``)
  reaches ``keep_threshold`` (the score rules out weak notes, not strong ones);
- an aligned score note no transcribed note matched is added at its aligned onset (the onset
  posterior's peak where the aligner found one), with the velocity the model heard there and the
  length its frame posterior holds. By default every such note is added: a score's notes are
  nearly all played, and on the tuning recordings requiring support (the key's onset peak reaching
  ``add_threshold`` or its frame probability ``add_frame_threshold``) left out more played notes
  than wrong ones (note F1 0.889 with 0.01/0.05, 0.900 with none; ``benchmarks/score_informed.py``).
  Raise them for a loose score: unsupported notes are then left out (the performer may not have
  played them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import MIDI_MIN, _check_ranges
from .errors import BadInput
from .notes import NoteArray, end_before_next_onset, notes_to_rolls


@dataclass(frozen=True)
class AlignConfig:
    """Score-to-performance alignment settings (see the module docstring for each step)."""

    onset_weight: float = 4.0  # weight of the onset part of each feature vector against the frame part
    silence: float = 0.1  # the constant component that makes silent frames match each other
    max_cells: int = 4_000_000  # above this many cost-matrix cells, align coarse first, then in a band
    band_frames: int = 16  # half-width of the fine band around the upsampled coarse path, in frames
    snap_s: float = 0.1  # how far from its warped time a note's onset may move to a posterior peak
    snap_threshold: float = 0.1  # the least onset probability of a peak a note may move to

    def __post_init__(self):
        _check_ranges(
            self,
            positive=("max_cells", "band_frames"),
            non_negative=("onset_weight", "silence", "snap_s"),
            unit=("snap_threshold",),
        )


@dataclass(frozen=True)
class CorrectConfig:
    """Score-informed correction settings (see the module docstring)."""

    match_s: float = 0.1  # a transcribed and an aligned score note of one key this close are the same note
    keep_threshold: float = 0.9  # a transcribed note the score lacks is kept from this onset probability
    support_s: float = 0.1  # the audio's support for a missed score note is looked for this far around it
    add_threshold: float = 0.0  # ... a missed score note is added when its key's onset probability reaches this
    add_frame_threshold: float = 0.0  # ... or its mean frame probability over support_s from the onset does (0: always)
    frame_threshold: float = 0.3  # an added note lasts while its frame probability stays above this

    def __post_init__(self):
        _check_ranges(
            self,
            non_negative=("match_s", "support_s"),
            unit=("keep_threshold", "add_threshold", "add_frame_threshold", "frame_threshold"),
        )


@dataclass
class Alignment:
    """A score aligned to a performance.

    ``notes``: the score's notes re-timed (same order as the score given, sorted; velocities and
    programs as in the score). ``warped_onset_s`` ``(n,)``: each onset as the warping path alone
    put it; ``snapped`` bool ``(n,)``: the onset was moved to a peak of the onset posterior there
    (``peak`` ``(n,)``: that peak's probability, 0 where none). ``path`` ``(L, 2)``: score frame,
    performance frame. ``cost``: the mean cost along the path (0: identical features, 1: nothing in common).
    """

    notes: NoteArray
    warped_onset_s: np.ndarray
    snapped: np.ndarray
    peak: np.ndarray
    path: np.ndarray
    frame_rate: float
    cost: float

    def score_to_performance(self, times_s: np.ndarray) -> np.ndarray:
        """Score seconds ``(n,)`` -> performance seconds ``(n,)`` along the warping path."""
        return warp_times(times_s, self.path, frame_rate=self.frame_rate)


# ------------------------------------------------------------------------------------- features


def _smooth_onsets(onset: np.ndarray) -> np.ndarray:
    """Spread onsets ``(n_frames, n_keys)`` over three frames (1/2, 1, 1/2), keeping the maximum."""
    out = onset.copy()
    out[1:] = np.maximum(out[1:], 0.5 * onset[:-1])
    out[:-1] = np.maximum(out[:-1], 0.5 * onset[1:])
    return out


def _features(frame: np.ndarray, onset: np.ndarray, config: AlignConfig) -> np.ndarray:
    """Frame and onset activations ``(n_frames, n_keys)`` -> unit feature vectors ``(n_frames, 2 * n_keys + 1)``."""
    n = len(frame)
    x = np.concatenate(
        [frame, config.onset_weight * _smooth_onsets(onset), np.full((n, 1), config.silence)], axis=1
    ).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def performance_features(onset: np.ndarray, frame: np.ndarray, *, config: AlignConfig = AlignConfig()) -> np.ndarray:
    """A transcriber's onset and frame posteriors ``(n_frames, 88)`` -> features ``(n_frames, 177)``."""
    onset = np.asarray(onset, np.float32)
    frame = np.asarray(frame, np.float32)
    if onset.shape != frame.shape or onset.ndim != 2:
        raise BadInput(f"onset {onset.shape} and frame {frame.shape} must both be (n_frames, n_keys)")
    return _features(frame, onset, config)


def score_features(
    notes: NoteArray,
    *,
    n_frames: int,
    frame_rate: float,
    fmin_midi: int = MIDI_MIN,
    n_keys: int = 88,
    config: AlignConfig = AlignConfig(),
) -> np.ndarray:
    """Score notes -> features ``(n_frames, 2 * n_keys + 1)`` like :func:`performance_features`'."""
    rolls = notes_to_rolls(
        notes.pitched(), n_frames=n_frames, frame_rate=frame_rate, fmin_midi=fmin_midi, n_keys=n_keys
    )
    return _features(rolls["frame"], rolls["onset"], config)


# ------------------------------------------------------------------------------------------ DTW

_BANDED = None


def _banded_kernel():
    """The numba kernel of :func:`banded_dtw` (compiled on first use)."""
    global _BANDED
    if _BANDED is None:
        import numba

        @numba.njit(cache=False, nogil=True)
        def kernel(x, y, lo, hi, w_diag, w_side):  # pragma: no cover - compiled
            n = x.shape[0]
            width = 0
            for i in range(n):
                width = max(width, hi[i] - lo[i] + 1)
            acc = np.full((n, width), np.inf)
            step = np.zeros((n, width), np.int8)  # 0 diagonal, 1 from (i-1, j), 2 from (i, j-1)
            for i in range(n):
                for j in range(lo[i], hi[i] + 1):
                    c = 1.0 - np.dot(x[i], y[j])
                    if i == 0 and j == 0:
                        acc[0, 0] = c
                        continue
                    best = np.inf
                    s = 0
                    if i > 0 and lo[i - 1] <= j - 1 <= hi[i - 1]:
                        v = acc[i - 1, j - 1 - lo[i - 1]] + w_diag * c
                        if v < best:
                            best, s = v, 0
                    if i > 0 and lo[i - 1] <= j <= hi[i - 1]:
                        v = acc[i - 1, j - lo[i - 1]] + w_side * c
                        if v < best:
                            best, s = v, 1
                    if j > lo[i]:
                        v = acc[i, j - 1 - lo[i]] + w_side * c
                        if v < best:
                            best, s = v, 2
                    acc[i, j - lo[i]] = best
                    step[i, j - lo[i]] = s
            m = hi[n - 1]
            path = np.zeros((n + m + 1, 2), np.int64)
            i, j, k = n - 1, m, 0
            while True:
                path[k, 0] = i
                path[k, 1] = j
                k += 1
                if i == 0 and j == 0:
                    break
                s = step[i, j - lo[i]]
                if s == 0:
                    i -= 1
                    j -= 1
                elif s == 1:
                    i -= 1
                else:
                    j -= 1
            return path[:k][::-1].copy(), acc[n - 1, m - lo[n - 1]]

        _BANDED = kernel
    return _BANDED


W_DIAG, W_SIDE = (
    1.0,
    1.0,
)  # librosa's default: a diagonal step costs one cell, so the path keeps to the diagonal where frames look alike


def banded_dtw(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
    """DTW between unit feature vectors ``x (n, d)`` and ``y (m, d)`` (cost 1 - cosine) inside a band:
    row ``i`` may use columns ``lo[i] .. hi[i]`` (non-decreasing, ``lo[0] == 0``, ``hi[-1] == m - 1``,
    consecutive rows overlapping). Returns ``(path (L, 2) from (0, 0) to (n-1, m-1), total cost)``."""
    lo = np.asarray(lo, np.int64)
    hi = np.asarray(hi, np.int64)
    if lo[0] != 0 or hi[-1] != len(y) - 1 or np.any(hi < lo) or np.any(lo[1:] > hi[:-1] + 1):
        raise ValueError("the band must start at (0, 0), end at (n-1, m-1) and be connected")
    path, total = _banded_kernel()(
        np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32), lo, hi, W_DIAG, W_SIDE
    )
    if not np.isfinite(total):
        raise ValueError("the band holds no path")
    return path, float(total)


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    """Average ``k`` consecutive frames ``(n, d) -> (ceil(n / k), d)``, rows rescaled to unit length."""
    n = len(x)
    pad = (-n) % k
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    y = x.reshape(-1, k, x.shape[1]).mean(axis=1)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-9)


def _band_from_path(path: np.ndarray, *, k: int, n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """A coarse path (cells of ``k x k`` frames) -> each fine row's column range, widened by ``radius``."""
    lo = np.full(n, m, np.int64)
    hi = np.full(n, -1, np.int64)
    for a, b in path:
        r0, r1 = a * k, min(n, (a + 1) * k)
        np.minimum.at(lo, np.arange(r0, r1), b * k)
        np.maximum.at(hi, np.arange(r0, r1), min(m - 1, (b + 1) * k - 1))
    # widen by `radius` rows and columns either way: row i may use what rows i-radius..i+radius may
    lo = np.array([lo[max(0, i - radius) : i + radius + 1].min() for i in range(n)]) - radius
    hi = np.array([hi[max(0, i - radius) : i + radius + 1].max() for i in range(n)]) + radius
    lo = np.clip(np.minimum.accumulate(lo[::-1])[::-1], 0, m - 1)
    hi = np.clip(np.maximum.accumulate(hi), 0, m - 1)
    lo[0], hi[-1] = 0, m - 1
    return lo, hi


def dtw_path(
    x: np.ndarray, y: np.ndarray, *, max_cells: int = 4_000_000, band_frames: int = 16
) -> tuple[np.ndarray, float]:
    """Warping path between unit feature vectors ``x (n, d)`` (score) and ``y (m, d)`` (performance).

    Full librosa DTW when ``n * m <= max_cells``; otherwise librosa's DTW on ``k``-frame averages
    (``k`` the least that fits ``max_cells``), refined in a band of ``band_frames`` (plus ``k``)
    around it. Returns ``(path (L, 2) of (score frame, performance frame), mean cost along it)``.
    """
    import librosa

    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise BadInput("nothing to align: the score or the performance has no frames")
    steps = np.array([[1, 1], [1, 0], [0, 1]])
    weights = np.array([W_DIAG, W_SIDE, W_SIDE])
    if n * m <= max_cells:
        cost = 1.0 - x.astype(np.float64) @ y.astype(np.float64).T
        acc, path = librosa.sequence.dtw(C=cost, step_sizes_sigma=steps, weights_mul=weights, backtrack=True)
        path = path[::-1].astype(np.int64)
        return path, float(cost[path[:, 0], path[:, 1]].mean())
    k = int(np.ceil(np.sqrt(n * m / max_cells)))
    xc, yc = _pool(x, k), _pool(y, k)
    cost = 1.0 - xc.astype(np.float64) @ yc.astype(np.float64).T
    _, coarse = librosa.sequence.dtw(C=cost, step_sizes_sigma=steps, weights_mul=weights, backtrack=True)
    lo, hi = _band_from_path(coarse[::-1], k=k, n=n, m=m, radius=band_frames + k)
    path, _ = banded_dtw(x, y, lo, hi)
    per_cell = 1.0 - np.einsum("ij,ij->i", x[path[:, 0]], y[path[:, 1]])
    return path, float(per_cell.mean())


def warp_times(times_s: np.ndarray, path: np.ndarray, *, frame_rate: float) -> np.ndarray:
    """Score seconds -> performance seconds: each score frame maps to the first performance frame the
    path reaches there, linearly in between (and beyond the ends, at the slope 1)."""
    path = np.asarray(path, np.int64)
    s, first = np.unique(path[:, 0], return_index=True)
    p = path[first, 1].astype(np.float64)
    x = np.asarray(times_s, np.float64) * frame_rate
    out = np.interp(x, s, p)
    out = np.where(x < s[0], p[0] + (x - s[0]), out)
    out = np.where(x > s[-1], p[-1] + (x - s[-1]), out)
    return out / frame_rate


# ------------------------------------------------------------------------------------ onsets


def _peaks(column: np.ndarray, threshold: float) -> np.ndarray:
    """Local maxima of a posterior column ``(n_frames,)`` at or above ``threshold`` (plateaus: first frame)."""
    c = column
    left = np.concatenate([[-np.inf], c[:-1]])
    right = np.concatenate([c[1:], [-np.inf]])
    return np.nonzero((c >= threshold) & (c > left) & (c >= right))[0]


def _rise(column: np.ndarray, j: int) -> float:
    """Where the onset posterior ``(n_frames,)`` rises through half of its peak at frame ``j``, in
    frames, to a fraction of a frame (linear between the frames either side of the crossing).
    The rising flank, not the top, is where the transcriber's own decoding puts an onset."""
    half = 0.5 * float(column[j])
    i = j
    while i > 0 and column[i - 1] >= half and j - i < 3:
        i -= 1
    if i == 0 or column[i - 1] >= half:
        return float(i)
    a, b = float(column[i - 1]), float(column[i])
    return i - 1 + (half - a) / (b - a) if b > a else float(i)


def snap_onsets(
    onset_s: np.ndarray,
    pitch: np.ndarray,
    onset_post: np.ndarray,
    *,
    frame_rate: float,
    fmin_midi: int = MIDI_MIN,
    window_s: float = 0.1,
    threshold: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move each estimated onset to a peak of its key's onset posterior ``(n_frames, n_keys)``.

    Per key, notes in time order take the nearest free peak within ``window_s`` that reaches
    ``threshold`` (nearer notes first, so two notes never share a peak). Returns
    ``(onset_s (n,), snapped bool (n,), peak probability (n,), 0 where none)``.
    """
    onset_s = np.asarray(onset_s, np.float64)
    pitch = np.asarray(pitch, np.int64)
    out = onset_s.copy()
    snapped = np.zeros(len(onset_s), bool)
    peak = np.zeros(len(onset_s))
    n_frames, n_keys = onset_post.shape
    for key in np.unique(pitch - fmin_midi):
        if not 0 <= key < n_keys:
            continue
        idx = np.nonzero(pitch - fmin_midi == key)[0]
        column = onset_post[:, key]
        peaks = _peaks(column, threshold)
        if not len(peaks):
            continue
        t_peaks = peaks / frame_rate
        # candidate (note, peak) pairs within the window, nearest first
        pairs = []
        for i in idx:
            lo, hi = np.searchsorted(t_peaks, [onset_s[i] - window_s, onset_s[i] + window_s + 1e-9])
            for q in range(lo, hi):
                pairs.append((abs(t_peaks[q] - onset_s[i]), int(i), int(q)))
        pairs.sort()
        used: set[int] = set()
        for _, i, q in pairs:
            if snapped[i] or q in used:
                continue
            used.add(q)
            snapped[i] = True
            peak[i] = float(column[peaks[q]])
            out[i] = _rise(column, int(peaks[q])) / frame_rate
    return out, snapped, peak


# ------------------------------------------------------------------------------------- align


def align_notes(
    score: NoteArray,
    posteriors: dict[str, np.ndarray],
    *,
    frame_rate: float,
    fmin_midi: int = MIDI_MIN,
    config: AlignConfig = AlignConfig(),
) -> Alignment:
    """Align ``score`` (notes in score time) to a performance given by a transcriber's
    ``posteriors`` (``onset`` and ``frame``, each ``(n_frames, n_keys)``). See the module docstring."""
    if not len(score.pitched()):
        raise BadInput("the score has no pitched notes to align")
    onset, frame = posteriors["onset"], posteriors["frame"]
    n_keys = onset.shape[1]
    perf = performance_features(onset, frame, config=config)
    score = score.sorted()
    n_score = int(np.ceil(max(score.end_s, float(score.onset_s.max()) + 1.0 / frame_rate) * frame_rate)) + 2
    ref = score_features(
        score, n_frames=n_score, frame_rate=frame_rate, fmin_midi=fmin_midi, n_keys=n_keys, config=config
    )
    path, cost = dtw_path(ref, perf, max_cells=config.max_cells, band_frames=config.band_frames)
    warped_on = warp_times(score.onset_s, path, frame_rate=frame_rate)
    warped_off = warp_times(score.offset_s, path, frame_rate=frame_rate)
    on, snapped, peak = snap_onsets(
        warped_on,
        score.pitch,
        np.asarray(onset, np.float32),
        frame_rate=frame_rate,
        fmin_midi=fmin_midi,
        window_s=config.snap_s,
        threshold=config.snap_threshold,
    )
    drums = score.program < 0
    on[drums], snapped[drums] = warped_on[drums], False
    off = np.maximum(warped_off + (on - warped_on), on + 1.0 / frame_rate)
    notes = NoteArray(on, off, score.pitch, score.velocity, score.program)
    return Alignment(
        notes=notes,
        warped_onset_s=warped_on,
        snapped=snapped,
        peak=peak,
        path=path,
        frame_rate=frame_rate,
        cost=cost,
    )


# ---------------------------------------------------------------------------------- correction


@dataclass
class Correction:
    """What :func:`correct_transcription` did: the corrected ``notes`` and how many notes were
    ``kept`` (matched to the score), ``kept_unscored`` (strong, without a score note), ``dropped``
    (weak, without a score note) and ``added`` (score notes the audio supports that the model missed);
    ``unsupported``: score notes left out for want of support in the audio."""

    notes: NoteArray
    kept: int
    kept_unscored: int
    dropped: int
    added: int
    unsupported: int


def match_by_key(
    a_onset: np.ndarray, a_pitch: np.ndarray, b_onset: np.ndarray, b_pitch: np.ndarray, *, tolerance_s: float
):
    """One-to-one pairs of notes of one key with onsets within ``tolerance_s``, nearest first.
    Returns ``(index into a (k,), index into b (k,))``."""
    pairs = []
    b_order = np.lexsort((b_onset, b_pitch))
    bp, bo = b_pitch[b_order], b_onset[b_order]
    for i in range(len(a_onset)):
        lo, hi = np.searchsorted(bp, a_pitch[i], side="left"), np.searchsorted(bp, a_pitch[i], side="right")
        if lo == hi:
            continue
        q0, q1 = lo + np.searchsorted(bo[lo:hi], [a_onset[i] - tolerance_s, a_onset[i] + tolerance_s + 1e-9])
        for q in range(q0, q1):
            pairs.append((abs(bo[q] - a_onset[i]), i, int(b_order[q])))
    pairs.sort()
    used_a, used_b, out_a, out_b = set(), set(), [], []
    for _, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out_a.append(i)
        out_b.append(j)
    return np.array(out_a, np.int64), np.array(out_b, np.int64)


def correct_transcription(
    transcribed: NoteArray,
    alignment: Alignment,
    posteriors: dict[str, np.ndarray],
    *,
    frame_rate: float,
    fmin_midi: int = MIDI_MIN,
    min_note_s: float = 0.05,
    config: CorrectConfig = CorrectConfig(),
) -> Correction:
    """Correct a transcription with an aligned score (see the module docstring).

    ``transcribed``: the notes decoded from ``posteriors`` (with their ``confidence``);
    ``alignment``: the score aligned to the same posteriors (:func:`align_notes`). Kept notes keep
    their timing and velocity; added notes take theirs from the posteriors.
    """
    score = alignment.notes
    pitched = score.program >= 0
    s_idx = np.nonzero(pitched)[0]
    t_match, s_match = match_by_key(
        transcribed.onset_s, transcribed.pitch, score.onset_s[s_idx], score.pitch[s_idx], tolerance_s=config.match_s
    )
    matched_t = np.zeros(len(transcribed), bool)
    matched_t[t_match] = True
    matched_s = np.zeros(len(score), bool)
    matched_s[s_idx[s_match]] = True
    conf = np.nan_to_num(transcribed.confidence, nan=1.0)
    keep = matched_t | (conf >= config.keep_threshold)
    kept = transcribed[keep]

    onset, frame = posteriors["onset"], posteriors["frame"]
    velocity = posteriors.get("velocity")
    n_frames, n_keys = onset.shape
    reach = max(1, int(round(config.support_s * frame_rate)))
    rows = []
    unsupported = 0
    for i in np.nonzero(pitched & ~matched_s)[0]:
        key = int(score.pitch[i]) - fmin_midi
        t0 = float(score.onset_s[i])
        j0 = int(round(t0 * frame_rate))
        if not (0 <= key < n_keys) or not 0 <= j0 < n_frames:
            unsupported += 1
            continue
        near = onset[max(0, j0 - reach) : j0 + reach + 1, key]
        on_support = float(near.max())
        frame_support = float(frame[j0 : j0 + reach + 1, key].mean())
        if on_support < config.add_threshold and frame_support < config.add_frame_threshold:
            unsupported += 1
            continue
        j = j0 + 1
        while j < n_frames and frame[j, key] >= config.frame_threshold:
            j += 1
        end = max(j / frame_rate, t0 + min_note_s)
        vel = 0.5 if velocity is None else float(velocity[max(0, j0 - reach) + int(np.argmax(near)), key])
        rows.append((t0, end, key + fmin_midi, int(np.clip(round(vel * 127), 1, 127)), on_support))
    added = NoteArray.empty()
    if rows:
        a = np.array(rows, np.float64)
        added = NoteArray(a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.zeros(len(a)), confidence=a[:, 4])
        # never two notes of one key closer than match_s: a kept note wins over an added one
        if len(kept):
            dup, _ = match_by_key(added.onset_s, added.pitch, kept.onset_s, kept.pitch, tolerance_s=config.match_s)
            added = added[np.setdiff1d(np.arange(len(added)), dup)]
    from .notes import concat_notes

    notes = concat_notes([kept, added])
    # a note ends where the next note of its key starts
    notes = _cut_overlaps(notes)
    return Correction(
        notes=notes,
        kept=int(matched_t.sum()),
        kept_unscored=int((keep & ~matched_t).sum()),
        dropped=int((~keep).sum()),
        added=len(added),
        unsupported=unsupported + (len(rows) - len(added)),
    )


def _cut_overlaps(notes: NoteArray) -> NoteArray:
    """End each note no later than the next onset of its key (and program)."""
    if len(notes) < 2:
        return notes
    off = end_before_next_onset(notes, notes.offset_s)
    return NoteArray(
        notes.onset_s,
        off,
        notes.pitch,
        notes.velocity,
        notes.program,
        notes.confidence,
        np.minimum(notes.release_s, off),
    )
