"""The run store: one SQLite row per run of a sweep, committed as each run ends.

A run's id is a hash of its fully resolved config and seed, so the same run has the
same id in every sweep that contains it. Rows are written by the sweep's driver
process only; WAL mode makes each commit durable against the driver being killed.
The store also keeps the sweep's resolved definition, so a resume can check that it
finishes the same sweep.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a table is built or read
    import pandas as pd


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    ord INTEGER NOT NULL,
    status TEXT NOT NULL,
    factors TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT,
    wall_time_s REAL,
    error TEXT,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

PENDING, DONE, FAILED = "pending", "done", "failed"


def run_id(config: dict[str, Any]) -> str:
    """Stable id of a run: hash of its resolved config (which holds its seed)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunStore:
    """``runs.sqlite`` of a sweep folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def add(self, runs: list[dict[str, Any]]) -> None:
        """Register planned runs (``id, ord, factors, seed, config``); known ids are kept."""
        self.db.executemany(
            "INSERT OR IGNORE INTO runs (id, ord, status, factors, seed, config) VALUES (?,?,?,?,?,?)",
            [
                (
                    r["id"],
                    r["ord"],
                    PENDING,
                    json.dumps(r["factors"]),
                    r["seed"],
                    json.dumps(r["config"], sort_keys=True),
                )
                for r in runs
            ],
        )
        self.db.commit()

    def done_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM runs WHERE status = ?", (DONE,))}

    def ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM runs")}

    def definition(self) -> dict[str, Any] | None:
        """The resolved sweep this store belongs to (None in a store written before it was kept)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'definition'").fetchone()
        return json.loads(row[0]) if row else None

    def set_definition(self, definition: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('definition', ?)",
            (json.dumps(definition, sort_keys=True),),
        )
        self.db.commit()

    def record(
        self, rid: str, status: str, metrics: dict[str, float] | None, wall_time_s: float, error: str | None
    ) -> None:
        """Store one run's outcome and commit at once."""
        self.db.execute(
            "UPDATE runs SET status=?, metrics=?, wall_time_s=?, error=?, finished_at=? WHERE id=?",
            (
                status,
                json.dumps(metrics) if metrics is not None else None,
                wall_time_s,
                error,
                time.time(),
                rid,
            ),
        )
        self.db.commit()

    def frame(self) -> pd.DataFrame:
        """All runs in plan order: id, status, one column per factor, seed, metrics, wall time, error."""
        rows = []
        for rid, status, factors, seed, metrics, wall, error in self.db.execute(
            "SELECT id, status, factors, seed, metrics, wall_time_s, error FROM runs ORDER BY ord"
        ):
            rows.append(
                {
                    "id": rid,
                    "status": status,
                    **json.loads(factors),
                    "seed": seed,
                    **(json.loads(metrics) if metrics else {}),
                    "wall_time_s": wall,
                    "error": error,
                }
            )
        import pandas as pd

        return pd.DataFrame(rows)
