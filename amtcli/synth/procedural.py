"""Procedural timbres: one-shot banks of instruments that no soundfont holds (issue 15, timbre at scale).

Each timbre is a random draw of a small physical-ish model, rendered by additive synthesis:

- a family: ``struck`` (piano-like: stiff strings, 1-3 detuned unison strings, a hammer thump, a
  double decay), ``plucked`` (guitar/harp-like: slightly stiff string, pick noise, faster decay) or
  ``sustained`` (organ/wind/bowed-like: flat sustain, slow attack, vibrato, odd/even balance);
- partials ``k f0 sqrt(1 + B k^2)`` (inharmonicity ``B`` growing towards the treble for struck
  strings), amplitudes ``k^-slope`` shaped by the striking or plucking point (``|sin(pi k x)|``),
  brighter at higher velocities;
- each partial decaying faster the higher it is (``tau_k = tau_1 / (1 + c (k - 1))``), the decay
  time of the fundamental shrinking towards the treble;
- a body: two to four resonances (peaking filters) and a tilt, drawn per timbre.

:func:`build_procedural_bank` writes the same bank as :func:`amtcli.synth.oneshot.build_bank` does
from soundfonts (``bank.json`` + ``samples/<timbre>.npy``), so ``amt synth --renderer oneshot`` mixes
procedural and sampled timbres alike. Every draw is recorded in ``bank.json`` and is a function of
the seed alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadInput, OutputExists
from .oneshot import DEFAULT_VELOCITIES, bank_meta, store_timbre, write_bank_json

FAMILIES = ("struck", "plucked", "sustained")
FAMILY_P = (0.4, 0.4, 0.2)
# playable range and the GM program written into labels (the closest family)
_RANGE = {"struck": (21, 108), "plucked": (40, 88), "sustained": (36, 96)}
_PROGRAM = {"struck": 0, "plucked": 24, "sustained": 19}
MAX_PARTIALS = 60
FLOOR_DB = -80.0  # a partial stops once its envelope is this far down
PRUNE_DB = -60.0  # partials this far below the strongest are left out


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_timbre(rng: np.random.Generator, family: str | None = None) -> dict:
    """The parameters of one procedural timbre (JSON-ready)."""
    if family is None:
        family = str(rng.choice(FAMILIES, p=FAMILY_P))
    if family not in FAMILIES:
        raise BadInput(f"unknown timbre family {family!r} (choose from {', '.join(FAMILIES)})")
    p: dict = {"family": family}
    if family == "struck":
        p.update(
            inharmonicity=_log_uniform(rng, 5e-5, 8e-4),  # B at MIDI 60
            strings=int(rng.integers(1, 4)),
            detune_cents=float(rng.uniform(0.0, 1.5)),
            slope=float(rng.uniform(0.8, 2.0)),
            strike_point=float(rng.uniform(0.08, 0.2)),
            t60_s=float(rng.uniform(4.0, 15.0)),  # of the fundamental at MIDI 40
            partial_decay=float(rng.uniform(0.05, 0.5)),
            double_decay=float(rng.uniform(0.1, 0.5)),  # weight of the slow part
            attack_s=float(rng.uniform(0.001, 0.004)),
            transient_db=float(rng.uniform(-30.0, -15.0)),
            transient_s=float(rng.uniform(0.005, 0.02)),
        )
    elif family == "plucked":
        p.update(
            inharmonicity=_log_uniform(rng, 1e-6, 1e-4),
            strings=1,
            detune_cents=0.0,
            slope=float(rng.uniform(0.6, 1.6)),
            strike_point=float(rng.uniform(0.1, 0.3)),
            t60_s=float(rng.uniform(1.0, 6.0)),
            partial_decay=float(rng.uniform(0.1, 1.0)),
            double_decay=float(rng.uniform(0.0, 0.3)),
            attack_s=float(rng.uniform(0.0005, 0.003)),
            transient_db=float(rng.uniform(-35.0, -20.0)),
            transient_s=float(rng.uniform(0.002, 0.01)),
        )
    else:
        p.update(
            inharmonicity=0.0,
            strings=1,
            detune_cents=0.0,
            slope=float(rng.uniform(0.5, 2.0)),
            even_gain=float(rng.uniform(0.1, 1.0)),
            attack_s=float(rng.uniform(0.02, 0.15)),
            vibrato_hz=float(rng.uniform(4.0, 6.5)),
            vibrato_cents=float(rng.uniform(0.0, 15.0)),
            t60_s=float(rng.uniform(8.0, 30.0)),  # a slow fade while held
            partial_decay=0.0,
        )
    n_res = int(rng.integers(2, 5))
    p["body"] = [
        [_log_uniform(rng, 100.0, 3000.0), float(rng.uniform(3.0, 12.0)), float(rng.uniform(1.0, 8.0))]
        for _ in range(n_res)
    ]  # (centre Hz, gain dB, Q)
    p["tilt_db_per_octave"] = float(rng.uniform(-3.0, 1.0))
    return p


def _peaking(x: np.ndarray, f0: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """A peaking-EQ biquad (RBJ cookbook) over ``x``."""
    from scipy.signal import lfilter

    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * min(f0, 0.45 * sample_rate) / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a_lin, -2 * np.cos(w0), 1 - alpha * a_lin])
    a = np.array([1 + alpha / a_lin, -2 * np.cos(w0), 1 - alpha / a_lin])
    return lfilter(b / a[0], a / a[0], x)


def render_note(
    params: dict, pitch: int, velocity: int, *, duration_s: float, sample_rate: int, seed: int
) -> np.ndarray:
    """One note of a procedural timbre: float32 ``(round(duration_s * sample_rate),)``, onset at sample 0."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    v = np.clip(velocity, 1, 127) / 127.0
    family = params["family"]
    nyquist = 0.45 * sample_rate
    b_coef = params["inharmonicity"] * (2.0 ** ((pitch - 60) / 12.0) if family == "struck" else 1.0)
    k = np.arange(1, MAX_PARTIALS + 1, dtype=np.float64)
    freqs = k * f0 * np.sqrt(1.0 + b_coef * k**2)
    keep = freqs < nyquist
    k, freqs = k[keep], freqs[keep]
    slope = params["slope"] - 0.6 * (v - 0.5)  # harder playing is brighter
    amps = k ** (-slope)
    if "strike_point" in params:
        amps *= 0.05 + np.abs(np.sin(np.pi * k * params["strike_point"]))
    if family == "sustained":
        amps[k % 2 == 0] *= params["even_gain"]
    amps *= 2.0 ** (params["tilt_db_per_octave"] / 6.02 * np.log2(freqs / 440.0))  # tilt, in amplitude
    tau1 = params["t60_s"] / np.log(1000.0) * 2.0 ** (-(pitch - 40) / 24.0 if family != "sustained" else 0.0)
    taus = tau1 / (1.0 + params["partial_decay"] * (k - 1))
    out = np.zeros(n)
    strings = int(params["strings"])
    offsets = np.linspace(-params["detune_cents"], params["detune_cents"], strings) if strings > 1 else np.zeros(1)
    vib = None
    if family == "sustained" and params["vibrato_cents"] > 0:
        depth = 2.0 ** (params["vibrato_cents"] / 1200.0) - 1.0
        rate = params["vibrato_hz"]
        # the phase of a frequency modulated by (1 + depth sin(2 pi rate t)), per unit frequency
        vib = t + depth * (1.0 - np.cos(2.0 * np.pi * rate * t)) / (2.0 * np.pi * rate)
    floor = np.log(10.0 ** (-FLOOR_DB / 20.0))
    audible = amps >= amps.max() * 10.0 ** (PRUNE_DB / 20.0)
    t32 = (vib if vib is not None else t).astype(np.float32)
    for fk, ak, tk in zip(freqs[audible], amps[audible], taus[audible]):
        m = min(n, int(np.ceil(tk * floor * sample_rate)) + 1)
        env = np.exp(-t[:m] / tk)
        if family in ("struck", "plucked") and params["double_decay"] > 0:
            w = params["double_decay"]
            env = (1.0 - w) * env**4 + w * env  # a fast part (tau / 4) and a slow one
        env = (env * (ak / len(offsets))).astype(np.float32)
        for cents in offsets:
            omega = np.float32(2.0 * np.pi * fk * 2.0 ** (cents / 1200.0))
            out[:m] += env * np.sin(omega * t32[:m] + np.float32(rng.uniform(0, 2 * np.pi)))
    attack = max(1, int(params["attack_s"] * sample_rate))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(min(attack, n)) / attack)
    out[: len(ramp)] *= ramp
    if "transient_db" in params:  # hammer thump / pick noise: a decaying noise burst, low-passed for hammers
        m = min(n, int(params["transient_s"] * sample_rate * 5))
        burst = rng.standard_normal(m) * np.exp(-t[:m] / params["transient_s"])
        if family == "struck":
            burst = np.convolve(burst, np.ones(8) / 8.0, mode="same")
        level = 10.0 ** (params["transient_db"] / 20.0) * float(np.sqrt(np.sum(amps**2)))
        out[:m] += level * burst / (np.sqrt(np.mean(burst**2)) or 1.0)
    for centre, gain_db, q in params["body"]:
        out = _peaking(out, centre, gain_db, q, sample_rate)
    out *= v**1.5
    return out.astype(np.float32)


def build_procedural_bank(
    out_dir: str | os.PathLike,
    *,
    n_timbres: int,
    seed: int = 0,
    velocities: tuple[int, ...] = DEFAULT_VELOCITIES,
    duration_s: float = 4.0,
    sample_rate: int = 16000,
    overwrite: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Draw ``n_timbres`` timbres (seeded) and render every (pitch of its range, velocity) as a
    ``duration_s`` one-shot into a bank folder. Returns the bank.json contents."""
    if n_timbres < 1:
        raise BadInput("a procedural bank needs at least one timbre")
    out = Path(out_dir)
    if (out / "bank.json").exists() and not overwrite:
        raise OutputExists(f"{out / 'bank.json'} exists (use --overwrite to rebuild the bank)")
    meta = bank_meta(sample_rate=sample_rate, duration_s=duration_s, procedural={"seed": seed, "n_timbres": n_timbres})
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0x70726F63])
    n_len = int(round(duration_s * sample_rate))
    for i in range(n_timbres):
        params = draw_timbre(rng)
        lo, hi = _RANGE[params["family"]]
        notes = [(p, v) for p in range(lo, hi + 1) for v in velocities]
        block = np.zeros((len(notes), n_len), np.float32)
        for j, (p, v) in enumerate(notes):
            block[j] = render_note(
                params, p, v, duration_s=duration_s, sample_rate=sample_rate, seed=seed * 7919 + i * 1000 + j
            )
        name = f"procedural_{seed}_{i:04d}"
        entry = store_timbre(
            out,
            block,
            name=name,
            notes=notes,
            sample_rate=sample_rate,
            program=_PROGRAM[params["family"]],
            params=params,
        )
        if entry is not None:
            meta["timbres"].append(entry)
        if on_progress:
            on_progress(i + 1, n_timbres, f"{name} ({params['family']})")
    return write_bank_json(out, meta)


__all__ = ["FAMILIES", "draw_timbre", "render_note", "build_procedural_bank"]
