"""Semantic label anchors for FedAlign: one embedding per class name, from a pluggable source.

FedAlign (Zhang et al., KDD 2023) initialises its label encoder with node2vec
embeddings of a label co-occurrence graph, so that classes related in meaning start
near each other in the shared space. Two sources here:

- ``graph`` (built in): a graph joining each class to the visual attributes it really
  has (for ``digits``: loops, strokes and bars of the handwritten figures; for
  ``shapes``: round/angular, filled/hollow, crossed, turned by 45 degrees, ...,
  exactly as :mod:`workloads.shapes` draws them). Single-label datasets have no label
  co-occurrence, so classes co-occur through shared attributes instead. It is embedded
  with NetMF (Qiu et al., WSDM 2018): the closed form that DeepWalk, i.e. node2vec with
  ``p = q = 1``, factorises implicitly, ``log max(vol(G)/(b T) * sum_{r<=T} P^r D^-1, 1)``,
  taken by SVD. It is deterministic (no random walks, no word2vec) and needs only
  networkx and NumPy; node2vec's biased walks (``p, q != 1``) are not reproduced.
- ``csv``: a user's file of class-name embeddings (e.g. word vectors), columns
  ``class, e0, e1, ...``, one row per class name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from sim.config import StrictModel, read_csv
from sim.errors import ConfigError

if TYPE_CHECKING:  # imported where anchors are made: validating a scenario needs only AnchorConfig
    import networkx as nx
    import pandas as pd
    import torch

# Attributes each class's figures really have (an assumption for digits: strokes of the
# usual handwritten forms; for shapes: read off the generator's geometry).
ATTRIBUTES: dict[str, dict[str, tuple[str, ...]]] = {
    "digits": {
        "zero": ("loop", "curved"),
        "one": ("vertical",),
        "two": ("curved", "diagonal", "base_bar"),
        "three": ("curved", "open_bowls"),
        "four": ("vertical", "diagonal", "mid_bar"),
        "five": ("top_bar", "curved", "open_bowls"),
        "six": ("loop", "lower_loop", "curved"),
        "seven": ("top_bar", "diagonal"),
        "eight": ("loop", "two_loops", "curved"),
        "nine": ("loop", "upper_loop", "vertical"),
    },
    "shapes": {
        "disk": ("round", "filled"),
        "square": ("angular", "filled", "square"),
        "triangle": ("angular", "filled", "pointed"),
        "plus": ("cross", "strokes"),
        "ring": ("round", "hollow"),
        "diamond": ("angular", "filled", "pointed", "square", "turned_45"),
        "bars": ("strokes", "parallel", "elongated"),
        "ellipse": ("round", "filled", "elongated"),
        "saltire": ("cross", "strokes", "turned_45"),
        "frame": ("angular", "hollow", "square"),
    },
}


class AnchorConfig(StrictModel):
    """Where the label anchors come from (see the module docstring) and their size."""

    source: Literal["graph", "csv"] = Field(
        "graph",
        description=(
            "graph: NetMF embedding of the built-in class-attribute graph; csv: a user's embeddings"
        ),
    )
    csv: str | None = Field(
        None, description="source csv: file with columns class, e0, e1, ... (one row per class name)"
    )
    dim: PositiveInt = Field(
        8, description="size of each label anchor (the csv's embedding columns must match)"
    )
    window: PositiveInt = Field(3, description="NetMF window T (walk length of DeepWalk's context)")
    negatives: PositiveFloat = Field(1.0, description="NetMF negative sampling b")

    @model_validator(mode="after")
    def _csv_given(self) -> AnchorConfig:
        if (self.source == "csv") != (self.csv is not None):
            raise ValueError("csv is needed with source 'csv' and only then")
        return self


def label_graph(dataset: str, class_names: tuple[str, ...]) -> nx.Graph:
    """Classes joined to their attributes (a bipartite graph); nodes ``class:<name>``, ``attr:<a>``."""
    import networkx as nx

    table = ATTRIBUTES.get(dataset.removesuffix("_shifted"))
    if table is None or set(table) != set(class_names):
        raise ConfigError(
            f"model.anchors.source: no built-in label graph for dataset {dataset!r} "
            f"(built in: {', '.join(ATTRIBUTES)}); give source: csv"
        )
    graph = nx.Graph()
    for name in class_names:
        graph.add_edges_from((f"class:{name}", f"attr:{a}") for a in table[name])
    return graph


def netmf(graph: nx.Graph, nodes: list[str], dim: int, window: int, negatives: float) -> np.ndarray:
    """NetMF embedding (rows for ``nodes``) of ``graph``: DeepWalk's matrix in closed form, by SVD."""
    import networkx as nx

    order = list(graph.nodes)
    if dim > len(order):
        raise ConfigError(f"model.anchors.dim: {dim} is more than the {len(order)} nodes of the label graph")
    adjacency = nx.to_numpy_array(graph, nodelist=order)
    degree = adjacency.sum(1)
    walk = adjacency / degree[:, None]
    power, total = np.eye(len(order)), np.zeros_like(adjacency)
    for _ in range(window):
        power = power @ walk
        total += power
    matrix = degree.sum() / (negatives * window) * total / degree[None, :]
    u, s, _ = np.linalg.svd(np.log(np.maximum(matrix, 1.0)))
    u = u[:, :dim] * np.where(u[np.abs(u).argmax(0), range(u.shape[1])] < 0, -1.0, 1.0)[:dim]  # fixed signs
    embedding = u * np.sqrt(s[:dim])
    return embedding[[order.index(n) for n in nodes]]


def read_anchor_csv(
    path: str, class_names: tuple[str, ...], dim: int, field: str = "model.anchors.csv"
) -> np.ndarray:
    """``[C, dim]`` embeddings from ``class, e0, ..., e{dim-1}`` rows, in ``class_names`` order."""
    import pandas as pd

    frame: pd.DataFrame = read_csv(path, field)
    if "class" not in frame.columns:
        raise ConfigError(f"{field}: {path!r} has no 'class' column (needs class, e0, e1, ...)")
    values = frame.drop(columns="class").apply(pd.to_numeric, errors="coerce")
    if values.shape[1] != dim:
        raise ConfigError(
            f"{field}: {path!r} has {values.shape[1]} embedding columns; model.anchors.dim is {dim}"
        )
    if values.isna().any(axis=None):
        raise ConfigError(f"{field}: {path!r}: every embedding value must be a number")
    rows = dict(zip(frame["class"].astype(str), values.to_numpy(float)))
    missing = [c for c in class_names if c not in rows]
    if missing:
        raise ConfigError(
            f"{field}: {path!r} lacks class(es) {', '.join(missing)} (needs all of {', '.join(class_names)})"
        )
    return np.stack([rows[c] for c in class_names])


def label_anchors(cfg: AnchorConfig, dataset: str, class_names: tuple[str, ...]) -> torch.Tensor:
    """The ``[C, dim]`` anchors of ``class_names``, each row L2-normalised."""
    import torch

    if cfg.source == "csv":
        table = read_anchor_csv(cfg.csv, class_names, cfg.dim)
    else:
        graph = label_graph(dataset, class_names)
        table = netmf(graph, [f"class:{c}" for c in class_names], cfg.dim, cfg.window, cfg.negatives)
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    return torch.from_numpy(table / np.where(norms > 0, norms, 1.0)).float()
