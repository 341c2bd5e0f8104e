"""Find a performance's piece in a library of scores from notes alone: symbolic fingerprints for a
fast pre-filter over the whole library, then subsequence DTW on the best candidates to re-rank them
and to find where in the piece the performance starts. Pure numpy (plus librosa's DTW): no torch,
no I/O, no model knowledge; :mod:`amtcli.inference.identify` transcribes the recording and keeps
the library's index on disk.

Fingerprints (after Arzt, Böck and Widmer, "Fast identification of piece and score position via
symbolic fingerprinting", ISMIR 2012): each note ``a`` is paired with every note ``b`` of the next
onset group (notes within ``group_s`` of the first onset at least ``min_gap_s`` after ``a``), and
each such ``b`` with every note ``c`` of the group after ``b``. The code of a triple is its three
pitches and the ratio of its two time gaps, ``(t_c - t_b) / (t_b - t_a)``, quantised on a log
scale: a global or slowly changing tempo leaves it unchanged, and no pitch is transposed (a score
and its performance share the key). A piece's fingerprint is the bag of its codes.

Pre-filter (:meth:`FingerprintIndex.search`): each piece scores the sum over the codes it shares
with the query of ``idf * min(query count, piece count)`` (``idf = log(n_pieces / pieces with the
code)``), divided by the piece's total code count to the power ``length_norm``.

Re-ranking (:func:`subsequence_match`): the query's onset and frame activations and each
candidate's piano roll become the features of :mod:`amtcli.align`, averaged to ``frame_rate``;
subsequence DTW (steps (1,1), (1,2), (2,1): the tempo may differ by up to 2x either way) finds the
stretch of the piece the whole query matches best. The mean cost along that path ranks the
candidates; the piece time of the path's first cell is the offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import MIDI_MIN, _check_ranges
from .errors import BadInput
from .notes import NoteArray

N_PITCH_CODES = 128


@dataclass(frozen=True)
class FingerprintConfig:
    """Symbolic fingerprint settings (see the module docstring)."""

    min_gap_s: float = 0.05  # a later note closer than this to a note counts as simultaneous with it
    group_s: float = 0.05  # notes within this of an onset group's first onset belong to the group
    max_gap_s: float = 2.0  # a pair of notes further apart than this makes no code
    max_group: int = 5  # at most this many notes of a group are paired (the first by onset)
    ratio_bins_per_octave: int = 4  # quantisation of log2 of the gap ratio
    max_log2_ratio: float = 3.0  # gap ratios beyond 2**+-this are clipped to it
    length_norm: float = 0.5  # a piece's score is divided by its code count to this power

    def __post_init__(self):
        _check_ranges(
            self,
            positive=("group_s", "max_gap_s", "max_group", "ratio_bins_per_octave", "max_log2_ratio"),
            non_negative=("min_gap_s", "length_norm"),
        )


def _next_group(onset_s: np.ndarray, cfg: FingerprintConfig) -> np.ndarray:
    """For each note (sorted by onset) the indices of the notes of its next onset group ``(n, max_group)``,
    ``-1`` where there is none."""
    n = len(onset_s)
    first = np.searchsorted(onset_s, onset_s + cfg.min_gap_s, side="left")
    safe = np.minimum(first, max(n - 1, 0))
    end = np.searchsorted(onset_s, onset_s[safe] + cfg.group_s, side="right")
    idx = first[:, None] + np.arange(cfg.max_group)[None, :]
    ok = (idx < end[:, None]) & (idx < n)
    ok &= np.take(onset_s, np.minimum(idx, n - 1)) - onset_s[:, None] <= cfg.max_gap_s
    return np.where(ok, idx, -1)


def note_codes(notes: NoteArray, *, config: FingerprintConfig = FingerprintConfig()) -> tuple[np.ndarray, np.ndarray]:
    """A piece's fingerprint codes: ``(codes (m,) int64, onset of each code's first note (m,) float64)``.

    A code packs the three pitches (7 bits each) and the quantised gap ratio."""
    notes = notes.pitched()
    if not len(notes):
        return np.zeros(0, np.int64), np.zeros(0)
    order = np.lexsort((notes.pitch, notes.onset_s))
    t = notes.onset_s[order].astype(np.float64)
    p = np.clip(notes.pitch[order].astype(np.int64), 0, N_PITCH_CODES - 1)
    nxt = _next_group(t, config)  # (n, g)
    a, j = np.nonzero(nxt >= 0)
    b = nxt[a, j]
    nxt_b = nxt[b]  # (pairs, g)
    pair, k = np.nonzero(nxt_b >= 0)
    a, b = a[pair], b[pair]
    c = nxt_b[pair, k]
    ratio = (t[c] - t[b]) / np.maximum(t[b] - t[a], 1e-6)
    lim = config.max_log2_ratio
    n_bins = int(round(2 * lim * config.ratio_bins_per_octave)) + 1
    rbin = np.rint((np.clip(np.log2(ratio), -lim, lim) + lim) * config.ratio_bins_per_octave).astype(np.int64)
    codes = ((p[a] * N_PITCH_CODES + p[b]) * N_PITCH_CODES + p[c]) * n_bins + rbin
    return codes, t[a]


def bag_of_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(m,)`` -> ``(unique codes (u,) int64, counts (u,) int32)``."""
    u, c = np.unique(codes, return_counts=True)
    return u.astype(np.int64), c.astype(np.int32)


@dataclass
class FingerprintIndex:
    """Inverted index over pieces: ``codes (P,)`` sorted, ``piece (P,)`` and ``count (P,)`` per posting;
    ``idf (P,)`` of each posting's code; ``norm (n_pieces,)`` each piece's total code count."""

    codes: np.ndarray
    piece: np.ndarray
    count: np.ndarray
    idf: np.ndarray
    norm: np.ndarray

    @classmethod
    def build(cls, bags: list[tuple[np.ndarray, np.ndarray]]) -> "FingerprintIndex":
        """One ``(unique codes, counts)`` per piece (:func:`bag_of_codes`)."""
        n = len(bags)
        codes = np.concatenate([b[0] for b in bags]) if n else np.zeros(0, np.int64)
        count = np.concatenate([b[1] for b in bags]) if n else np.zeros(0, np.int32)
        if n and codes.max(initial=0) < np.iinfo(np.int32).max:
            codes = codes.astype(np.int32)  # half the memory of a large library
        piece = np.concatenate([np.full(len(b[0]), i, np.int32) for i, b in enumerate(bags)]) if n else count
        order = np.argsort(codes, kind="stable")
        codes, piece, count = codes[order], piece[order].astype(np.int32), count[order]
        bounds = np.flatnonzero(np.diff(codes)) + 1  # codes are sorted: runs of one code
        df = np.diff(np.concatenate([[0], bounds, [len(codes)]]))
        idf = np.repeat(np.log(max(n, 1) / np.maximum(df, 1)), df).astype(np.float32)
        norm = np.array([float(b[1].sum()) for b in bags], np.float64)
        return cls(codes=codes, piece=piece, count=count, idf=idf, norm=norm)

    @property
    def n_pieces(self) -> int:
        return len(self.norm)

    def search(self, codes: np.ndarray, *, length_norm: float = 0.5) -> np.ndarray:
        """Scores of every piece ``(n_pieces,)`` for a query's codes ``(m,)`` (higher: more alike)."""
        q, qc = bag_of_codes(np.asarray(codes, self.codes.dtype))
        lo = np.searchsorted(self.codes, q, side="left")
        hi = np.searchsorted(self.codes, q, side="right")
        lengths = hi - lo
        if not lengths.sum():
            return np.zeros(self.n_pieces)
        # every posting of every query code, without a Python loop
        owner = np.repeat(np.arange(len(q)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        post = np.repeat(lo, lengths) + offsets
        w = self.idf[post] * np.minimum(self.count[post].astype(np.float32), qc[owner])
        scores = np.bincount(self.piece[post], weights=w, minlength=self.n_pieces)
        return scores / np.maximum(self.norm, 1.0) ** length_norm


# ------------------------------------------------------------------------------ re-ranking by DTW


@dataclass
class SubsequenceMatch:
    """The stretch of a piece a query matches: ``cost`` the mean cost along the warping path (0:
    identical, 1: nothing in common), ``offset_s`` the piece time at the query's start,
    ``end_s`` the piece time at its end, ``path (L, 2)`` (query frame, piece frame) at ``frame_rate``."""

    cost: float
    offset_s: float
    end_s: float
    path: np.ndarray
    frame_rate: float


def pool_frames(x: np.ndarray, k: int) -> np.ndarray:
    """Average ``k`` consecutive rows ``(n, d) -> (ceil(n / k), d)``, rescaled to unit length."""
    from .align import _pool

    return _pool(x, k) if k > 1 else x


def subsequence_match(query: np.ndarray, piece: np.ndarray, *, frame_rate: float) -> SubsequenceMatch:
    """Subsequence DTW of ``query (n, d)`` inside ``piece (m, d)`` (unit feature vectors, cost 1 - cosine,
    steps (1,1), (1,2), (2,1)). A piece shorter than half the query is padded with silence-like rows
    (copies of its last row) so that a path exists."""
    import librosa

    n, m = len(query), len(piece)
    if n == 0 or m == 0:
        raise BadInput("nothing to match: the query or the piece has no frames")
    need = (n + 1) // 2 + 1
    if m < need:
        piece = np.concatenate([piece, np.repeat(piece[-1:], need - m, axis=0)])
    cost = 1.0 - query.astype(np.float64) @ piece.astype(np.float64).T
    np.clip(cost, 0.0, 2.0, out=cost)
    steps = np.array([[1, 1], [1, 2], [2, 1]])
    acc, path = librosa.sequence.dtw(
        C=cost, step_sizes_sigma=steps, weights_mul=np.ones(3), subseq=True, backtrack=True
    )
    path = path[::-1].astype(np.int64)
    # librosa 0.11 can end a subsequence path one column past the matrix with steps longer than 1
    path = np.minimum(path, np.array(cost.shape) - 1)
    return SubsequenceMatch(
        cost=float(cost[path[:, 0], path[:, 1]].mean()),
        offset_s=float(path[0, 1]) / frame_rate,
        end_s=float(path[-1, 1] + 1) / frame_rate,
        path=path,
        frame_rate=frame_rate,
    )


def notes_features(
    notes: NoteArray, *, frame_rate: float, fmin_midi: int = MIDI_MIN, n_keys: int = 88, pool: int = 1
) -> np.ndarray:
    """A piece's notes -> the alignment features of :func:`amtcli.align.score_features`, averaged over
    ``pool`` frames: ``(ceil(n_frames / pool), 2 * n_keys + 1)``."""
    from .align import score_features

    notes = notes.pitched()
    n_frames = int(np.ceil(max(notes.end_s if len(notes) else 0.0, 0.0) * frame_rate)) + 2
    return pool_frames(
        score_features(notes, n_frames=n_frames, frame_rate=frame_rate, fmin_midi=fmin_midi, n_keys=n_keys), pool
    )
