"""The ``federated`` kind: simulated time against the device models, round semantics, errors."""

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from devices.clients import Availability, AvailabilityConfig
from sim.cli import main
from sim.errors import ConfigError
from sim.kernel import Kernel
from sim.runner import load_spec, run
from workloads.federated.training import flops_per_sample, forward_flops_per_sample
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
        (
            "asynchronous.max_staleness=-1",
            "asynchronous.max_staleness: Input should be greater than or equal to 0",
        ),
        ("patience.time_s=0", "patience.time_s: Input should be greater than 0"),
        ("patience.retries=0", "patience.retries: Input should be greater than 0"),
        ("model.head=linear", None),
        ("model.arch=cnn", "model.arch: 'cnn' needs an image dataset; 'digits' is tabular"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(tmp_path, capsys, setting, message):
    path = tmp_path / "fl.yaml"
    path.write_text(json.dumps({**BASE, "partition": {"scheme": "exclusive"}}))
    if setting == "model.head=linear":  # fine for FedAvg, not for a policy that trains the anchored head
        assert main(["validate", str(path), "--set", setting]) == 0
        setting, message = (
            "model.head=linear",
            "model.head: 'linear' cannot serve aggregation 'label_anchored'",
        )
        path.write_text(json.dumps({**BASE, "aggregation": {"name": "label_anchored"}}))
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


# ---- no run hangs or ends silently -------------------------------------------------------


def windows(tmp_path, rows, count=30):
    path = tmp_path / f"windows{count}.csv"
    path.write_text(
        "client,start_s,end_s\n" + "".join(f"{c},{a},{b}\n" for c in range(count) for a, b in rows)
    )
    return str(path)


def test_nobody_selectable_stops_after_patience_with_a_reason(tmp_path, capsys):
    trace = {"mode": "trace", "trace_csv": windows(tmp_path, [(0, 5)])}  # everyone gone after 5 s
    s = spec(**{"clients.availability": trace, "rounds": 30, "patience": {"time_s": 600}})
    start = time.perf_counter()
    result = run(s, seed=0)
    assert time.perf_counter() - start < 10
    summary, err = result.summary, capsys.readouterr().err
    assert summary["rounds"] < 30 and summary["stopped_early"] == summary["stopped_no_client"] == 1
    lines = [line for line in err.splitlines() if "stopped after" in line]
    assert len(lines) == 1 and "no client could be selected for 600 s" in lines[0]
    assert "no client could be selected" in result.tables["stop"]["reason"].iloc[0]
    # waited patience.time_s of simulated time past the last round, no more
    assert summary["sim_time_s"] == pytest.approx(result.tables["curve"]["time_s"].iloc[-1] + 600, abs=10)
    # patience in tries
    retries = run(s.model_copy(update={"patience": s.patience.model_copy(update={"retries": 3})}), seed=0)
    assert retries.summary["sim_time_s"] == pytest.approx(
        retries.tables["curve"]["time_s"].iloc[-1] + 30, abs=10
    )


def test_unreachable_deadline_stops_instead_of_hanging(capsys):
    deadline = {"name": "deadline", "params": {"deadline_s": 1e-6}}
    result = run(spec(selection=deadline, mode="sync"), seed=0)
    assert result.summary["rounds"] == 0 and result.summary["stopped_no_client"] == 1
    assert "no client could be selected" in capsys.readouterr().err
    asynchronous = run(
        spec(selection=deadline, mode="async", asynchronous={"concurrency": 6, "buffer": 3}), seed=0
    )
    assert asynchronous.summary["stopped_no_client"] == 1 and asynchronous.summary["rounds"] == 0


def test_reaching_max_time_before_the_rounds_says_so(capsys):
    result = run(spec(rounds=30, max_time_s=3.0), seed=0)
    summary = result.summary
    assert summary["rounds"] < 30 and summary["stopped_max_time"] == 1 and summary["stopped_no_client"] == 0
    assert (
        "stopped after" in capsys.readouterr().err
        and "max_time_s (3 s simulated)" in result.tables["stop"]["reason"][0]
    )
    done = run(spec(), seed=0)
    assert done.summary["stopped_early"] == 0 and done.tables["stop"]["reason"][0] == "completed"


def test_availability_windows_cycle(tmp_path):
    cfg = AvailabilityConfig(
        mode="trace", trace_csv=windows(tmp_path, [(0, 5), (90, 100)], count=2), period_s=100
    )
    avail = Availability(cfg, 2, np.random.default_rng(0))
    assert avail.available(3.0).all() and not avail.available(50.0).any() and avail.available(1003.0).all()
    # a window reaching the period's end runs on into the next period's first window
    assert avail.online_until(95.0)[0] == 105.0 and avail.online_until(1002.0)[0] == 1005.0
    trace = {"mode": "trace", "trace_csv": windows(tmp_path, [(0, 5)]), "period_s": 50}
    result = run(spec(**{"clients.availability": trace, "rounds": 12}), seed=0)
    assert result.summary["rounds"] == 12 and result.summary["stopped_early"] == 0
    with pytest.raises(ConfigError, match="ending after period_s"):
        Availability(cfg.model_copy(update={"period_s": 50.0}), 2, np.random.default_rng(0))


def test_fedbuff_discards_updates_staler_than_max_staleness():
    base = {"mode": "async", "rounds": 6, "clients.count": 30}
    loose = run(spec(**base, asynchronous={"concurrency": 12, "buffer": 3}), seed=0)
    strict = run(spec(**base, asynchronous={"concurrency": 12, "buffer": 3, "max_staleness": 0}), seed=0)
    trips = trips_of(strict)
    assert strict.summary["stale_count"] > 0 and loose.summary["stale_count"] == 0
    kept = trips[trips["outcome"] == "kept"]
    stale = trips[trips["outcome"] == "stale"]
    # a kept update was trained from the version current when its buffer was aggregated
    flushed = strict.tables["curve"].set_index("round")["time_s"]
    for _, row in kept.iterrows():
        assert row["version"] == int((flushed < row["arrive_s"]).sum()) - 1
    assert (stale["arrive_s"] > flushed.iloc[1]).all()


def test_clients_without_data_are_never_selected(capsys):
    # one class each and 2,000 clients on digits: ~200 owners share a class's ~144 samples
    part = {"scheme": "exclusive", "classes_per_client": 1}
    s = spec(**{"clients.count": 2000, "clients_per_round": 200, "rounds": 3, "partition": part})
    world = FederatedWorld(s, Kernel(s.seed))
    empty = int((world.labelled == 0).sum())
    assert (
        empty > 0 and f"warning: {empty} of 2000 clients hold no labelled samples" in capsys.readouterr().err
    )
    world.run()
    _, tables = world.results()
    assert (world.labelled[tables["participation"]["client"].to_numpy()] > 0).all()


def test_compute_is_charged_for_what_is_trained_and_inferred():
    part = {"scheme": "exclusive", "classes_per_client": 3, "unlabelled_share": 0.5}
    s = spec(**{"partition": part, "rounds": 2, "clients.count": 10, "clients_per_round": 10})
    world = FederatedWorld(s, Kernel(s.seed))
    world.run()
    trips = world.results()[1]["participation"]
    speed, flops = world.population.speed_flops_per_s, flops_per_sample(world.model, (64,))
    c = trips["client"].to_numpy()
    # FedAvg trains on labelled samples only: unlabelled ones cost nothing
    assert world.labelled.sum() < world.partition.sizes().sum()
    np.testing.assert_allclose(
        trips["compute_end_s"] - trips["download_end_s"],
        world.labelled[c] * s.local.epochs * flops / speed[c],
    )
    la = spec(**{"partition": part, "rounds": 1, "clients.count": 10, "clients_per_round": 10})
    la = la.model_copy(update={"aggregation": la.aggregation.model_copy(update={"name": "label_anchored"})})
    world = FederatedWorld(la, Kernel(la.seed))
    pseudo = {}
    original = world._start

    def spy(clients):
        trips = original(clients)
        pseudo.update({k: len(v[0]) for k, v in world.pseudo.items()})
        return trips

    world._start = spy
    world.run()
    trips = world.results()[1]["participation"]
    c = trips["client"].to_numpy()
    speed, model = world.population.speed_flops_per_s, world.model
    train = flops_per_sample(model, (64,)) * 2 * la.local.epochs  # two optimiser phases per batch
    infer = forward_flops_per_sample(model, (64,))
    n_pseudo = np.array([pseudo[k] for k in c])
    assert n_pseudo.sum() > 0
    expected = ((world.labelled[c] + n_pseudo) * train + world.partition.sizes()[c] * infer) / speed[c]
    np.testing.assert_allclose(trips["compute_end_s"] - trips["download_end_s"], expected)


def test_report_has_loss_plot_and_table_section(tmp_path):
    """The report plots test and client loss per round and shows the curve and stop tables."""
    from sim.runner import write_run

    result = run(spec())
    curve = result.tables["curve"]
    assert np.isnan(curve["train_loss"].iloc[0]) and (curve["train_loss"].iloc[1:] > 0).all()
    # clients' loss under the model they downloaded falls as the model learns
    assert curve["train_loss"].iloc[-1] < curve["train_loss"].iloc[1]
    write_run(result, tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text()
    assert (tmp_path / "run" / "loss_vs_round.png").is_file()
    assert 'id="tables"' in page and "train_loss" in page and "completed" in page


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_over_rounds_on_a_terminal_only(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run(spec())
    assert "rounds:" in terminal.getvalue() and "/4 " in terminal.getvalue()
    monkeypatch.undo()
    run(spec())  # captured stderr is no terminal: no bar
    assert "rounds:" not in capsys.readouterr().err


def test_study_headline_pairs_the_labelled_arms():
    """With zipped arms labelled by ``name``, the headline pairs label_anchored with plain
    FedAvg only, not with FedAvg that trains the anchored head (same aggregation name)."""
    import pandas as pd

    from workloads.federated.study import headline

    done = pd.DataFrame(
        {
            "partition": ["scheme=iid"] * 6,
            "name": ["fedavg", "fedavg_head", "label_anchored"] * 2,
            "seed": [0, 0, 0, 1, 1, 1],
            "final_accuracy": [0.80, 0.10, 0.90, 0.70, 0.20, 0.90],
        }
    )
    row = headline(done, ["partition", "name"]).iloc[0]
    assert (row["fedavg"], row["label_anchored"], row["difference"], row["seeds"]) == (0.75, 0.9, 0.15, 2)
