"""The ``federated`` kind: simulated time against the device models, round semantics, errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.kernel import Kernel
from sim.runner import load_spec, run
from workloads.federated.training import flops_per_sample
from workloads.federated.world import FederatedWorld

ROOT = Path(__file__).parents[1]
BASE = {
    "kind": "federated",
    "dataset": "digits",
    "clients": {"count": 30},
    "clients_per_round": 6,
    "rounds": 4,
    "local": {"epochs": 1},
}


def spec(**changes):
    data = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        node = data
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return load_spec(data)


def trips_of(result):
    return result.tables["participation"]


def test_round_time_is_the_slowest_clients_download_compute_upload():
    s = spec(**{"clients.count": 6, "rounds": 1})
    world = FederatedWorld(s, Kernel(s.seed))
    pop, size = world.population, world.model_bytes
    flops = flops_per_sample(world.model, (64,)) * world.partition.sizes() * s.local.epochs
    expected = (
        2 * pop.link_latency_s
        + size / pop.download_bytes_per_s
        + flops / pop.speed_flops_per_s
        + size / pop.upload_bytes_per_s
    )
    world.run()
    summary, tables = world.results()
    assert summary["sim_time_s"] == pytest.approx(expected.max(), rel=1e-12)
    assert np.allclose(np.sort(tables["participation"]["arrive_s"]), np.sort(expected))


def test_every_participation_is_accounted_for_and_bytes_match():
    result = run(spec(**{"clients.dropout_probability": 0.3, "rounds": 6}), seed=3)
    trips, s = trips_of(result), result.summary
    counts = trips["outcome"].value_counts()
    assert counts.sum() == s["participations"] == 6 * 6
    assert s["dropped_updates"] == counts["dropped"] + counts["straggler"] + counts["late"] > 0
    size = s["bytes_down"] / s["participations"]
    assert s["bytes_up"] == size * counts["kept"]
    dropped = trips[trips["outcome"] == "dropped"]
    assert (dropped["drop_s"] < dropped["arrive_s"]).all() and (trips["energy_j"] >= 0).all()


def test_over_commit_keeps_the_first_k_and_drops_the_slower():
    result = run(spec(**{"selection": {"name": "over_commit", "params": {"factor": 1.5}}}), seed=1)
    for _, rnd in trips_of(result).groupby("version"):
        kept, late = rnd[rnd["outcome"] == "kept"], rnd[rnd["outcome"] == "straggler"]
        assert len(rnd) == 9 and len(kept) == 6
        assert late.empty or late["arrive_s"].min() >= kept["arrive_s"].max()


def test_deadline_rounds_close_at_the_deadline():
    deadline = {"name": "deadline", "params": {"deadline_s": 0.4}}
    s = spec(**{"selection": deadline, "clients.dropout_probability": 0.2})
    result = run(s, seed=2)
    trips = trips_of(result)
    close = result.tables["curve"]["time_s"].to_numpy()
    start = trips.groupby("version")["start_s"].first().to_numpy()
    assert (close[1:] - start <= 0.4 + 1e-9).all()
    late = trips[trips["outcome"] == "late"]
    assert (late["arrive_s"] - late["start_s"] > 0.4).all()


def test_dropout_share_matches_its_probability():
    result = run(spec(**{"clients.dropout_probability": 0.3, "rounds": 25}), seed=0)
    share = (trips_of(result)["outcome"] == "dropped").mean()
    assert abs(share - 0.3) < 0.08


def test_async_aggregates_buffers_of_k_with_staleness():
    s = spec(mode="async", asynchronous={"concurrency": 10, "buffer": 4}, rounds=5)
    result = run(s, seed=0)
    curve = result.tables["curve"]
    assert curve["round"].tolist() == list(range(6)) and (curve["updates"].iloc[1:] == 4).all()
    trips = trips_of(result)
    assert (trips["version"] < 5).all() and (trips["version"] > 0).any()  # later clients got newer models


def test_hierarchical_sync_uploads_one_model_per_busy_aggregator():
    flat = run(spec(), seed=0).summary
    tiered = run(spec(**{"clients.topology": {"edge_aggregators": 2}}), seed=0).summary
    size = flat["bytes_down"] / flat["participations"]
    assert tiered["bytes_up"] == flat["bytes_up"] + size * 2 * 4
    assert tiered["sim_time_s"] > flat["sim_time_s"]


def test_same_seed_same_curve_bit_for_bit():
    s = spec(**{"partition": {"scheme": "exclusive", "classes_per_client": 3, "unlabelled_share": 0.2}})
    s = s.model_copy(update={"aggregation": s.aggregation.model_copy(update={"name": "label_anchored"})})
    a, b = run(s, seed=4), run(s, seed=4)
    assert a.tables["curve"].equals(b.tables["curve"]) and json.dumps(a.summary) == json.dumps(b.summary)
    assert not a.tables["curve"].equals(run(s, seed=5).tables["curve"])


@pytest.mark.parametrize(
    "setting, message",
    [
        ("clients_per_round=40", "clients_per_round: 40 is larger than clients.count (30)"),
        ("partition.alpha=0", "partition.alpha: Input should be greater than 0"),
        ("partition.scheme=exclusive", None),
        ("partition.classes_per_client=11", "partition.classes_per_client: 11 is more than the 10 classes"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(tmp_path, capsys, setting, message):
    path = tmp_path / "fl.yaml"
    path.write_text(json.dumps({**BASE, "partition": {"scheme": "exclusive"}}))
    code = main(["validate", str(path), "--set", setting])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_ten_thousand_clients_stay_under_two_gib():
    script = (
        "import resource, json\n"
        "from sim.runner import load_spec, run\n"
        "s = load_spec({'kind': 'federated', 'dataset': 'digits_shifted', 'clients': {'count': 10000,"
        " 'availability': {'mode': 'on_off'}}, 'partition': {'scheme': 'dirichlet'},"
        " 'clients_per_round': 100, 'rounds': 3})\n"
        "r = run(s)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps([r.summary['participations'], peak]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    participations, peak_kib = json.loads(out.stdout.strip().splitlines()[-1])
    assert participations == 300
    assert peak_kib < 2 * 1024**2
