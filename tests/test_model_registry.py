"""Bring your own xr model: by module:factory path or registered by name; edited models are re-costed."""

import sys

import pytest

from sim import registry
from sim.errors import ConfigError
from sim.runner import load_spec, run

NET = """
from torch import nn

from sim.registry import register


def build(width=8):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Flatten(), nn.Linear(width * 30 * 30, 10))


@register("model", "my_tracker_{tag}")
class Tracker(nn.Module):
    input_shape = (1, 3, 32, 32)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)

    def forward(self, x):
        return self.conv(x)
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's in the working folder, fresh for each test (own name, own cache)."""
    tag = tmp_path.name.replace("-", "_")
    (tmp_path / f"mynets_{tag}.py").write_text(NET.format(tag=tag))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tag
    sys.modules.pop(f"mynets_{tag}", None)
    registry._TABLES["model"].pop(f"my_tracker_{tag}", None)


def _energy_j(task: str, **stream) -> float:
    spec = load_spec(
        {
            "kind": "xr",
            "duration_s": 0.2,
            "hardware": {"preset": "Single_4K", "dataflow": "WS"},
            "models": [{"name": "mine", "task": task, "fps": 10, **stream}],
        }
    )
    return run(spec, seed=0).summary["energy_j"]


def test_a_factory_with_kwargs_runs_and_kwargs_change_its_cost(user_module):
    task = f"mynets_{user_module}:build"
    narrow = _energy_j(task, input_shape=[1, 3, 32, 32], task_kwargs={"width": 8})
    wide = _energy_j(task, input_shape=[1, 3, 32, 32], task_kwargs={"width": 64})
    assert wide > narrow > 0


def test_a_registered_model_runs_by_name(user_module):
    __import__(f"mynets_{user_module}")
    assert _energy_j(f"my_tracker_{user_module}") > 0


def test_an_edited_model_is_costed_again(user_module, tmp_path):
    from workloads.xr import models

    task = f"mynets_{user_module}:build"
    before = _energy_j(task, input_shape=[1, 3, 32, 32])
    path = tmp_path / f"mynets_{user_module}.py"
    path.write_text(path.read_text().replace("def build(width=8)", "def build(width=64)"))
    # a new process: the module imported afresh, only the disk cache remains
    sys.modules.pop(f"mynets_{user_module}")
    registry._TABLES["model"].pop(f"my_tracker_{user_module}")
    models._task_layers.cache_clear()
    assert _energy_j(task, input_shape=[1, 3, 32, 32]) > 2 * before


@pytest.mark.parametrize(
    "stream, message",
    [
        ({"task": "nosuch_mod:build"}, "cannot import 'nosuch_mod:build'"),
        (
            {"task": "MOD:build", "input_shape": [1, 3, 8, 8]},
            "cannot run on an input of shape \\[1, 3, 8, 8\\]",
        ),
        ({"task": "MOD:build"}, "input_shape: model '.*:build' declares no input_shape"),
        ({"task": "MOD:build", "input_shape": [1, 3, 32, 32], "task_kwargs": {"depth": 3}}, "does not take"),
    ],
)
def test_bad_user_models_are_config_errors(user_module, stream, message):
    stream = {
        k: (v.replace("MOD", f"mynets_{user_module}") if isinstance(v, str) else v) for k, v in stream.items()
    }
    with pytest.raises(ConfigError, match=message):
        load_spec({"kind": "xr", "models": [{"name": "mine", "fps": 10, **stream}]})
