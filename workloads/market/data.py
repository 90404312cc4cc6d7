"""Users' data for a ``market`` run: scikit-learn's bundled tables or a user's CSV files.

Rows are shuffled once by ``split_seed`` (the same split for every run seed, as in the
reference), the last ``holdout`` rows are held out and the first ``test_points`` of
those are the test set; the rest is the pool that users and seed data are drawn from.
Features are min-max scaled with the pool's minimum and maximum; ``label_noise``
replaces that share of the pool's labels with labels drawn uniformly from all
classes (so some keep their value). Test labels stay clean and test rows are scaled
like the pool, unless ``reference_test`` asks for the reference code's choice: the
held-out rows scaled with their own minimum and maximum and noised like the pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from sim.config import SUBFIELD_MARK, StrictModel, read_csv
from sim.errors import ConfigError
from sim.kernel import numpy_rng

if TYPE_CHECKING:  # pandas is imported only to read CSV files
    import pandas as pd

BUNDLED_CLASSES = {"digits": 10, "breast_cancer": 2, "wine": 3}
BUNDLED_ROWS = {"digits": 1797, "breast_cancer": 569, "wine": 178}  # scikit-learn's tables
REFERENCE_HOLDOUT, REFERENCE_TEST = 5000, 3000


class DataConfig(StrictModel):
    """Where users' points come from: ``source`` is a bundled scikit-learn table or ``csv``.

    ``csv_x`` holds one numeric column per feature, ``csv_y`` one column of integer class
    labels ``0 .. n_classes - 1``, row for row; relative paths are relative to the
    working directory. ``holdout`` unset: 5,000 rows (the reference), or a third of the
    rows for tables under 15,000 rows. ``test_points`` unset: 3,000, or every held-out row
    if fewer.
    """

    source: Literal["digits", "breast_cancer", "wine", "csv"] = Field(
        "digits", description="a scikit-learn table, or csv (csv_x and csv_y)"
    )
    csv_x: str | None = Field(
        None, description="csv: file of numeric feature columns (relative to the working folder)"
    )
    csv_y: str | None = Field(None, description="csv: file of one integer label column, row for row")
    header: bool = Field(True, description="the CSV files start with a row of column names")
    n_classes: int | None = Field(None, ge=2, description="csv: the class set; unset: 0 .. max label")
    minmax: bool = Field(True, description="scale features by the pool's minimum and maximum")
    label_noise: float = Field(
        0.0, ge=0.0, lt=1.0, description="share of pool labels replaced by uniformly drawn ones"
    )
    holdout: PositiveInt | None = Field(
        None, description="held-out rows (unset: 5,000, or a third of a small table)"
    )
    test_points: PositiveInt | None = Field(
        None, description="held-out rows used as the test set (unset: 3,000 or all)"
    )
    split_seed: NonNegativeInt = Field(
        0, description="seed of the shuffle and label noise (same for every run seed)"
    )
    reference_test: bool = Field(
        False,
        description="score as the reference code does: held-out rows min-max scaled with their own "
        "minimum and maximum, and label_noise applied to their labels too",
    )

    @model_validator(mode="after")
    def _source_fields(self) -> DataConfig:
        csv, problems = self.source == "csv", []
        for key in ("csv_x", "csv_y"):
            value = getattr(self, key)
            if csv and value is None:
                problems.append(f"{key}: required with source 'csv' (a CSV file path)")
            if not csv and value is not None:
                problems.append(f"{key}: only applies to source 'csv', not {self.source!r} (got {value!r})")
        if not csv and self.n_classes is not None:
            problems.append(f"n_classes: only applies to source 'csv'; {self.source} has its own classes")
        if self.holdout and self.test_points and self.test_points > self.holdout:
            problems.append(f"test_points: {self.test_points} is more than the {self.holdout} held-out rows")
        if problems:
            raise ValueError("; ".join(SUBFIELD_MARK + p for p in problems))
        return self


@dataclass(frozen=True)
class MarketData:
    """The prepared data: the pool users are drawn from, and the clean test set."""

    pool_x: np.ndarray  # [N, d] float32, min-max scaled
    pool_y: np.ndarray  # [N] int64, with label noise
    test_x: np.ndarray  # [n_test, d] float32
    test_y: np.ndarray  # [n_test] int64
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.pool_x.shape[1]


_CACHE: dict[tuple, MarketData] = {}


def load_data(cfg: DataConfig) -> MarketData:
    """Read, validate, split, scale and noise the data once per config and file version."""
    stamp = tuple(_mtime(p) for p in (cfg.csv_x, cfg.csv_y) if p is not None)
    key = (cfg.model_dump_json(), stamp)
    if key not in _CACHE:
        _CACHE.clear()  # one data set at a time: a sweep worker runs one scenario after another
        _CACHE[key] = _prepare(cfg, *_read(cfg))
    return _CACHE[key]


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1  # reading it reports the problem


def _read(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, int]:
    if cfg.source != "csv":
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{cfg.source}")()
        return bunch.data.astype(np.float64), bunch.target.astype(np.int64), BUNDLED_CLASSES[cfg.source]
    x = _csv(cfg.csv_x, "data.csv_x", cfg.header)
    y = _csv(cfg.csv_y, "data.csv_y", cfg.header)
    features = _numeric_features(x, cfg.csv_x, cfg.header)
    labels, n_classes = _labels(y, cfg.csv_y, cfg.n_classes, cfg.header)
    if len(labels) != len(features):
        raise ConfigError(
            f"data.csv_y: {cfg.csv_y!r} has {len(labels)} rows but data.csv_x {cfg.csv_x!r} has "
            f"{len(features)}; they must match row for row"
        )
    return features, labels, n_classes


def _csv(path: str, field: str, header: bool) -> pd.DataFrame:
    frame = read_csv(path, field, header=0 if header else None)
    if frame.empty:
        raise ConfigError(f"{field}: {path!r} has no data rows")
    return frame


def _shown(value: object) -> str:
    """A cell as a user wrote it: strings quoted, numbers plain."""
    return repr(value) if isinstance(value, str) else str(value)


def _row(index: int, header: bool) -> int:
    """The line number in the file of data row ``index``."""
    return index + (2 if header else 1)


def _numeric_features(frame: pd.DataFrame, path: str, header: bool) -> np.ndarray:
    import pandas as pd

    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | ~np.isfinite(values.to_numpy(float)))
        if bad.size:
            raw = frame[column].iloc[bad[0]]
            what = "a missing value" if pd.isna(raw) else _shown(raw)
            raise ConfigError(
                f"data.csv_x: column {column!r} of {path!r} must be numeric; line "
                f"{_row(bad[0], header)} holds {what}"
            )
    return frame.to_numpy(np.float64)


def _labels(frame: pd.DataFrame, path: str, n_classes: int | None, header: bool) -> tuple[np.ndarray, int]:
    import pandas as pd

    if frame.shape[1] != 1:
        raise ConfigError(
            f"data.csv_y: {path!r} must have exactly one column of labels (got {frame.shape[1]})"
        )
    raw = frame.iloc[:, 0]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(float)
    top = n_classes - 1 if n_classes is not None else None
    allowed = f"0..{top} (data.n_classes = {n_classes})" if top is not None else "0, 1, 2, ..."
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
    if top is not None:
        bad |= values > top
    first = np.flatnonzero(bad)
    if first.size:
        i = first[0]
        raise ConfigError(
            f"data.csv_y: line {_row(i, header)} of {path!r}: label {_shown(raw.iloc[i])} is outside the "
            f"class set {allowed}"
        )
    labels = values.astype(np.int64)
    found = int(labels.max()) + 1
    if n_classes is None and found < 2:
        raise ConfigError(f"data.csv_y: {path!r} holds a single class; a market needs at least two")
    return labels, n_classes if n_classes is not None else found


def split_sizes(cfg: DataConfig, n: int) -> tuple[int, int]:
    """(held-out rows, test rows) of a table of ``n`` rows; a ConfigError if they do not fit."""
    holdout = cfg.holdout or (REFERENCE_HOLDOUT if n >= 3 * REFERENCE_HOLDOUT else n // 3)
    if holdout >= n:
        raise ConfigError(f"data.holdout: {holdout} held-out rows leave no users: the data has {n} rows")
    n_test = cfg.test_points or min(REFERENCE_TEST, holdout)
    if n_test > holdout:
        raise ConfigError(f"data.test_points: {n_test} is more than the {holdout} held-out rows")
    return holdout, n_test


def pool_size(cfg: DataConfig) -> tuple[int, int]:
    """(pool rows, classes) of the data, for checks at validation: a bundled table's are
    known; a CSV pair is read (once per file version, as the run reads it)."""
    if cfg.source == "csv":
        data = load_data(cfg)
        return len(data.pool_y), data.n_classes
    n = BUNDLED_ROWS[cfg.source]
    return n - split_sizes(cfg, n)[0], BUNDLED_CLASSES[cfg.source]


def _prepare(cfg: DataConfig, x: np.ndarray, y: np.ndarray, n_classes: int) -> MarketData:
    n = len(y)
    holdout, n_test = split_sizes(cfg, n)
    split = numpy_rng(cfg.split_seed, "market/data/split")
    order = split.permutation(n)
    pool_rows, held_rows = order[: n - holdout], order[n - holdout :]
    pool_x, held_x = x[pool_rows], x[held_rows]
    if cfg.minmax:
        pool_x, held_x = _minmax(pool_x, pool_x), _minmax(held_x, held_x if cfg.reference_test else pool_x)
    pool_y, held_y = y[pool_rows].copy(), y[held_rows].copy()
    if cfg.label_noise > 0:
        _noise(pool_y, cfg.label_noise, n_classes, numpy_rng(cfg.split_seed, "market/data/noise"))
        if cfg.reference_test:
            _noise(held_y, cfg.label_noise, n_classes, numpy_rng(cfg.split_seed, "market/data/test-noise"))
    arrays = [pool_x.astype(np.float32), pool_y, held_x[:n_test].astype(np.float32), held_y[:n_test]]
    for a in arrays:
        a.setflags(write=False)
    return MarketData(*arrays, n_classes=n_classes)


def _minmax(x: np.ndarray, by: np.ndarray) -> np.ndarray:
    """``x`` scaled with the minimum and maximum of ``by`` (a constant column becomes 0)."""
    low, span = by.min(0), np.ptp(by, axis=0)
    return (x - low) / np.where(span > 0, span, 1.0)


def _noise(labels: np.ndarray, share: float, n_classes: int, rng: np.random.Generator) -> None:
    """Replace ``share`` of ``labels``, in place, by labels drawn uniformly from all classes."""
    hit = rng.choice(len(labels), int(len(labels) * share), replace=False)
    labels[hit] = rng.integers(0, n_classes, hit.size)
