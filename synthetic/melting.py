"""Synthetic melting-tank series in the KAMP schema: batch cycles whose faults make NG learnable.

Every batch runs charge -> heat -> stir -> discharge. During stirring, heater faults push the
temperature under or over the batch setpoint and stirrer faults slow the motor; the product goes
NG with a probability that grows with how far, and for how long, the process left its window in
the last few readings. Faults come in every size, so many are harmless near misses; a small share
of labels is flipped at random. A model that sees the past readings can learn the rule, but not
perfectly: setpoints drift, sensors are noisy, labels are sampled and some are wrong.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

log = logging.getLogger(__name__)

COLUMNS = ("STD_DT", "NUM", "MELT_TEMP", "MOTORSPEED", "MELT_WEIGHT", "INSP", "TAG")
START = "2020-03-04 00:00:00"
STEP_SECONDS = 6
PHASES = ("charge", "heat", "stir", "discharge")
# Phase lengths in rows (6 s each), drawn uniformly per batch: about 43 minutes per batch.
PHASE_ROWS = ((30, 60), (80, 150), (150, 300), (30, 60))
SETPOINT = 505.0
STIR_RPM = 1450.0
# Fault starts per stirring row, and the NG rule's knobs (calibrated to about 1.2 % NG).
TEMP_FAULT_RATE = 0.0012
MOTOR_FAULT_RATE = 0.0011
TEMP_TOLERANCE = 10.0
SLOWDOWN_TOLERANCE = 0.2
STRESS_MEMORY = 5
NG_FLIP_RATE = 0.0008
OK_FLIP_SHARE = 0.05


def _phase_layout(rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Batch id, phase id and progress through the phase (0..1) of every row."""
    n_batches = rows // 250 + 2
    lengths = np.stack([rng.integers(lo, hi + 1, n_batches) for lo, hi in PHASE_ROWS], axis=1)
    flat = lengths.ravel()
    starts = np.cumsum(flat) - flat
    phase = np.repeat(np.tile(np.arange(len(PHASES)), n_batches), flat)[:rows]
    batch = np.repeat(np.repeat(np.arange(n_batches), len(PHASES)), flat)[:rows]
    pos = np.arange(phase.size) - np.repeat(starts, flat)[:rows]
    frac = pos / np.repeat(flat, flat)[:rows]
    return {"phase": phase, "batch": batch, "frac": frac, "n_batches": n_batches}


def _lag(target: np.ndarray, alpha: float) -> np.ndarray:
    """First-order lag (thermal or mechanical inertia) as one vectorised IIR filter."""
    out, _ = lfilter([alpha], [1.0, alpha - 1.0], target, zi=[(1 - alpha) * target[0]])
    return out


def _faults(
    stir: np.ndarray,
    rate: float,
    sizes: np.ndarray,
    durations: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Sum of rectangular faults starting on stirring rows; `sizes` holds one size per row."""
    rows = stir.size
    starts = np.flatnonzero(stir & (rng.random(rows) < rate))
    size = sizes[starts]
    ends = np.minimum(starts + rng.integers(durations[0], durations[1] + 1, starts.size), rows)
    steps = np.zeros(rows + 1)
    np.add.at(steps, starts, size)
    np.add.at(steps, ends, -size)
    return np.cumsum(steps)[:rows]


def generate_series(rows: int = 835_200, seed: int = 0) -> pd.DataFrame:
    """A melting-tank log of `rows` readings 6 s apart, deterministic for a seed."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    lay = _phase_layout(rows, rng)
    phase, batch, frac = lay["phase"], lay["batch"], lay["frac"]
    stir = phase == 2
    t = np.arange(rows)

    # Setpoints drift between batches (AR(1)) and with the day (ambient losses).
    batch_drift = lfilter([1.0], [1.0, -0.98], rng.normal(0, 0.6, lay["n_batches"]))
    setpoint = SETPOINT + batch_drift[batch] + 3.0 * np.sin(2 * np.pi * t / 14_400)
    rpm = (STIR_RPM + rng.normal(0, 35, lay["n_batches"]))[batch]
    weight = rng.uniform(600, 900, lay["n_batches"])[batch]

    temp_offset = np.array([-140.0, 5.0, 0.0, -30.0])[phase]
    amplitude = rng.uniform(4, 40, rows) * rng.choice([-1.0, 1.0], rows)
    temp_fault = _faults(stir, TEMP_FAULT_RATE, amplitude, (10, 60), rng)
    temp_true = _lag(setpoint + temp_offset + temp_fault, 0.06)

    motor_share = np.array([0.04, 0.5, 1.0, 0.2])[phase]
    slowdown = _faults(stir, MOTOR_FAULT_RATE, rng.uniform(0.05, 0.7, rows), (4, 30), rng)
    motor_true = _lag(rpm * motor_share * np.clip(1 - slowdown, 0.1, 1.0), 0.35)

    fill = np.select([phase == 0, phase == 3], [frac, 1 - frac], 1 - 0.01 * frac * (phase == 2))
    weight_true = weight * fill

    # NG: the product suffers when the recent stirring left the temperature or speed window.
    slow_share = 1 - motor_true / rpm
    stress = np.maximum(np.abs(temp_true - setpoint) - TEMP_TOLERANCE, 0) / 8
    stress += np.maximum(slow_share - SLOWDOWN_TOLERANCE, 0) / 0.15
    kernel = np.ones(STRESS_MEMORY) / STRESS_MEMORY
    recent = lfilter(kernel, [1.0], stress * stir)
    p_ng = 0.95 * (1 - np.exp(-1.5 * np.maximum(recent - 0.3, 0)))
    ng = rng.random(rows) < p_ng
    flips = rng.random(rows)
    ng = np.where(ng, flips >= OK_FLIP_SHARE, flips < NG_FLIP_RATE)

    temp = temp_true + rng.normal(0, 1.5, rows)
    motor = np.maximum(motor_true + rng.normal(0, 8, rows), 0)
    weight_obs = np.maximum(weight_true + rng.normal(0, 3, rows), 0)
    insp = 3.20 + 0.0004 * (temp_true - setpoint) * stir + rng.normal(0, 0.004, rows)

    return pd.DataFrame(
        {
            "STD_DT": pd.date_range(START, periods=rows, freq=f"{STEP_SECONDS}s"),
            "NUM": t,
            "MELT_TEMP": np.rint(temp).astype(np.int64),
            "MOTORSPEED": np.rint(motor).astype(np.int64),
            "MELT_WEIGHT": np.rint(weight_obs).astype(np.int64),
            "INSP": np.round(insp, 2),
            "TAG": np.where(ng, "NG", "OK"),
        },
        columns=list(COLUMNS),
    )


def write_csv(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write the series as the KAMP CSV (timestamps with seconds)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m synthetic melting`."""
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=835_200, help="readings, 6 s apart")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same file)")


def main(args: argparse.Namespace) -> Path:
    """Generate and write the series, then print a one-line summary."""
    began = time.perf_counter()
    frame = generate_series(args.rows, args.seed)
    generated = time.perf_counter()
    path = write_csv(frame, args.out)
    written = time.perf_counter()
    ng = int((frame["TAG"] == "NG").sum())
    print(
        f"wrote {path}: {len(frame):,} rows, {ng:,} NG ({ng / len(frame):.2%}); "
        f"generated in {generated - began:.1f} s, written in {written - generated:.1f} s"
    )
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    main(parser.parse_args())
