"""``summary.json`` and tables of a ``federated`` run (definitions in docs/metrics.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from workloads.federated.world import FederatedWorld


def participation_table(world: FederatedWorld) -> pd.DataFrame:
    """One row per client participation: its phases, how it ended and its energy."""
    from workloads.federated.world import OUTCOMES, Trips

    if not world.records:
        columns = ["client", "version", "start_s", "download_end_s", "compute_end_s", "arrive_s", "drop_s"]
        return pd.DataFrame(columns=[*columns, "outcome", "energy_j"])
    trips = Trips.concat([t for t, _, _ in world.records])
    frame = pd.DataFrame({name: getattr(trips, name) for name in trips.__dataclass_fields__})
    frame = frame.rename(columns={"clients": "client"})
    codes = np.concatenate([o for _, o, _ in world.records])
    frame["outcome"] = pd.Categorical.from_codes(codes, categories=list(OUTCOMES))
    frame["energy_j"] = np.concatenate([e for _, _, e in world.records])
    return frame.sort_values(["start_s", "client"], kind="stable").reset_index(drop=True)


def summarise(world: FederatedWorld) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    columns = ["round", "time_s", "accuracy", "test_loss", "train_loss", "updates"]
    curve = pd.DataFrame(world.curve, columns=columns)
    trips = participation_table(world)
    reached = curve.loc[curve["accuracy"] >= world.spec.target_accuracy, "time_s"]
    kept = trips["outcome"] == "kept"
    rounds = int(curve["round"].iloc[-1])
    summary = {
        "final_accuracy": float(curve["accuracy"].iloc[-1]),
        "best_accuracy": float(curve["accuracy"].max()),
        "time_to_target_s": float(reached.iloc[0]) if len(reached) else float("nan"),
        "rounds": float(rounds),
        "sim_time_s": float(world.env.now),
        "mean_round_s": float(curve["time_s"].iloc[-1] / rounds) if rounds else float("nan"),
        "bytes_up": world.bytes_up,
        "bytes_down": world.bytes_down,
        "participations": float(len(trips)),
        "dropped_updates": float((~kept).sum()),
        "client_energy_j": float(trips["energy_j"].sum()),
    }
    for outcome in ("dropped", "straggler", "late", "stale"):
        summary[f"{outcome}_count"] = float((trips["outcome"] == outcome).sum())
    reason = world.stop_reason
    summary["stopped_early"] = float(bool(reason))
    summary["stopped_no_client"] = float(reason.startswith("no client"))
    summary["stopped_max_time"] = float(reason.startswith("reached max_time_s"))
    summary["pseudo_labelled"] = float(world.pseudo_count)
    summary["pseudo_label_accuracy"] = (
        world.pseudo_correct / world.pseudo_count if world.pseudo_count else float("nan")
    )
    stop = pd.DataFrame({"rounds": [rounds], "of": [world.spec.rounds], "reason": [reason or "completed"]})
    return summary, {"curve": curve, "participation": trips, "stop": stop}
