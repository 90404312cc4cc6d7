"""Shared test data: the shipped scenario and sweep files."""

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def shipped(kind: str = "scenario") -> list[Path]:
    """Shipped YAML files: scenarios (they have `kind`) or sweeps (they have `base`)."""
    key = "kind" if kind == "scenario" else "base"
    return sorted(p for p in (ROOT / "scenarios").rglob("*.yaml") if key in yaml.safe_load(p.read_text()))
