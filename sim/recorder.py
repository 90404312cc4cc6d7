"""Columnar records: typed arrays appended per event, DataFrames built once at the end.

A hot path takes a column's bound ``append`` once (``col = table.appender("t")``) and
calls it per event; nothing is converted until :meth:`Table.to_frame`.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

# array typecodes by the kinds a column may hold
_TYPECODES = {"f8": "d", "i8": "q", "i4": "l", "i2": "h", "b": "b"}


class Table:
    """A table of named, typed columns, each an ``array.array``.

    ``codes`` columns hold integer codes of a category list given at construction
    (model names, statuses) and become pandas categoricals.
    """

    def __init__(self, columns: dict[str, str], categories: dict[str, Sequence[str]] | None = None):
        unknown = set(columns.values()) - set(_TYPECODES)
        if unknown:
            raise ValueError(f"column kinds {sorted(unknown)} not in {sorted(_TYPECODES)}")
        self._cols = {name: array(_TYPECODES[kind]) for name, kind in columns.items()}
        self._categories = {k: list(v) for k, v in (categories or {}).items()}

    def appender(self, name: str) -> Callable[[Any], None]:
        """The bound ``append`` of column ``name``, for hot loops."""
        return self._cols[name].append

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def column(self, name: str) -> np.ndarray:
        """A zero-copy NumPy view of column ``name``."""
        col = self._cols[name]
        return np.frombuffer(col, dtype=col.typecode) if len(col) else np.array([], col.typecode)

    def to_frame(self) -> pd.DataFrame:
        lengths = {len(c) for c in self._cols.values()}
        if len(lengths) > 1:
            raise RuntimeError(f"ragged table: column lengths {sorted(lengths)}")
        data: dict[str, Any] = {}
        for name in self._cols:
            values = self.column(name).copy()
            if name in self._categories:
                cats = self._categories[name]
                data[name] = pd.Categorical.from_codes(values, categories=cats)
            else:
                data[name] = values
        return pd.DataFrame(data)
