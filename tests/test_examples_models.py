"""The bring-your-own-model examples run, one per kind, each on a module of examples/my_models.py."""

import importlib.util
import sys

import pytest
from conftest import ROOT

from sim import registry


@pytest.fixture
def example(tmp_path, monkeypatch):
    """Loads ``examples/<name>.py``; afterwards the user's module is forgotten as in a new process."""
    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "path", [str(ROOT / "examples"), *sys.path])  # as `python examples/x.py` has it

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    yield load
    sys.modules.pop("my_models", None)
    registry._TABLES.get("model", {}).pop("tiny_tracker", None)


def test_my_xr_model_is_costed_by_its_width(example, capsys):
    results = example("my_xr_model").main(["--duration", "0.1"])
    assert results[64]["energy_j"] > results[16]["energy_j"] > 0
    assert "tracker width 64" in capsys.readouterr().out


def test_my_edge_model_trains_and_exits_early(example):
    results = example("my_edge_model").main(["--duration", "0.5"])
    plain, early = results["none"], results["max_softmax"]
    assert plain["mean_exit_index"] == 1.0 > early["mean_exit_index"]
    assert early["flops_per_inference"] < plain["flops_per_inference"]
    assert early["active_energy_per_inference_j"] < plain["active_energy_per_inference_j"]
    assert plain["accuracy"] > 0.6


def test_my_federated_model_trains_like_the_built_in(example):
    results = example("my_federated_model").main(["--rounds", "2"])
    assert set(results) == {"built-in mlp", "my client_net"}
    assert all(r["final_accuracy"] > 0.2 and r["bytes_up"] > 0 for r in results.values())
    assert results["my client_net"]["bytes_up"] != results["built-in mlp"]["bytes_up"]  # other parameters


def test_my_market_model_competes_with_logistic_predictors(example):
    accuracy = example("my_market_model").main(["--users", "200"])
    assert set(accuracy) == {"logistic", "mine"} and min(accuracy.values()) > 0.5
