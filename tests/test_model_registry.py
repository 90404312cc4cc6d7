"""Bring your own model, for every kind: by module:factory path or registered by name; edited
models are re-costed (xr) or retrained (edge); bad ones are one-line config errors."""

import sys

import pytest

from sim import registry
from sim.errors import ConfigError
from sim.runner import load_spec, run

NET = """
import math

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


class TwoExits(nn.Module):
    def __init__(self, input_shape, num_classes, width=4):
        super().__init__()
        self.stages = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1), nn.ReLU()),
             nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())]
        )
        self.heads = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, num_classes))
            for _ in range(2)
        )

    def forward(self, x):
        out = []
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            out.append(head(x))
        return out


register("model", "my_exits_{tag}")(TwoExits)


class NoExits(TwoExits):
    def __init__(self, input_shape, num_classes):
        super().__init__(input_shape, num_classes)
        del self.heads


class OneOutput(TwoExits):
    def forward(self, x):
        return super().forward(x)[-1]


def not_a_module(input_shape, num_classes):
    return 42


def small_net(input_shape, num_classes, hidden=16):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.Tanh(), nn.Linear(hidden, num_classes)
    )


def with_batch_norm(input_shape, num_classes):
    features = math.prod(input_shape)
    layers = [nn.Flatten(), nn.Linear(features, 4), nn.BatchNorm1d(4), nn.Linear(4, num_classes)]
    return nn.Sequential(*layers)


def wrong_width(input_shape, num_classes):
    return small_net(input_shape, num_classes + 1)


def linear(input_shape, num_classes):
    return nn.Linear(input_shape[0], num_classes)


class Once(nn.Linear):
    def forward(self, x):
        return super().forward(x.flatten(1))


def once_net(input_shape, num_classes):
    return Once(math.prod(input_shape), num_classes)
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
    _forget(tag)


def _forget(tag: str) -> None:
    """As a new process would: the user's module not imported, its models not registered."""
    sys.modules.pop(f"mynets_{tag}", None)
    for name in ("my_tracker", "my_exits"):
        registry._TABLES["model"].pop(f"{name}_{tag}", None)


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
    _forget(user_module)
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


def _edge(model: str, **fields):
    return load_spec(
        {
            "kind": "edge",
            "duration_s": 0.5,
            "model": model,
            "exit_policy": {"name": "max_softmax"},
            "dvfs": {"name": "performance"},
            **fields,
        }
    )


def test_a_users_multi_exit_model_trains_and_runs_by_path_and_by_name(user_module):
    from workloads import multiexit
    from workloads.multiexit import load_exit_model

    result = run(_edge(f"mynets_{user_module}:TwoExits", model_kwargs={"width": 4}), seed=0)
    assert result.summary["completed"] > 0 and 0.3 < result.summary["accuracy"] <= 1
    model = load_exit_model(f"mynets_{user_module}:TwoExits", {"width": 4}, "digits")
    assert len(model.heads) == len(model.segments) == 2 and model.test_probs.shape[:2] == (2, 360)
    # the backbone between the exits is the second stage's conv; each head is pool, flatten, linear
    assert [[layer.name for layer in seg if layer.macs] for seg in model.segments] == [
        ["stages.0.0"],
        ["stages.1.0"],
    ]
    assert all(any(layer.macs for layer in head) for head in model.heads)
    __import__(f"mynets_{user_module}")  # a plugin registers it; then the name is a model
    assert _edge(f"my_exits_{user_module}", dataset="patches").dataset == "patches"
    assert len(multiexit._build(multiexit.user_model(f"my_exits_{user_module}", {}, "patches")).heads) == 2


def test_an_edited_multi_exit_model_is_trained_again(user_module, tmp_path):
    from workloads import multiexit

    ref = f"mynets_{user_module}:TwoExits"
    before = multiexit.cache_path(multiexit.user_model(ref, {}, "digits"))
    wider = multiexit.cache_path(multiexit.user_model(ref, {"width": 8}, "digits"))
    shapes = multiexit.cache_path(multiexit.user_model(ref, {}, "patches"))
    path = tmp_path / f"mynets_{user_module}.py"
    path.write_text(path.read_text().replace("stride=2", "stride=1"))
    _forget(user_module)
    multiexit._cache_key.cache_clear()
    after = multiexit.cache_path(multiexit.user_model(ref, {}, "digits"))
    assert len({before, wider, shapes, after}) == 4


@pytest.mark.parametrize(
    "model, fields, message",
    [
        ("nosuch_mod:Net", {}, "model: cannot import 'nosuch_mod:Net'"),
        ("MOD:not_a_module", {}, "model: 'mynets_.*:not_a_module' returned int, not a torch nn.Module"),
        ("MOD:TwoExits", {"model_kwargs": {"depth": 3}}, "model_kwargs: .* does not take"),
        (
            "MOD:TwoExits",
            {"model_kwargs": {"num_classes": 3}},
            "model_kwargs: num_classes is set by the scenario",
        ),
        ("MOD:NoExits", {}, "model: .* declares no exits; .* attribute `heads`"),
        ("MOD:OneOutput", {}, "model: .* must return a list of 2 per-exit logits"),
        ("resnet_digit", {}, "model: unknown multi-exit model 'resnet_digit'; did you mean 'resnet_digits'"),
        (
            "resnet_digits",
            {"model_kwargs": {"width": 3}},
            "model_kwargs: built-in model 'resnet_digits' takes none",
        ),
        ("resnet_digits", {"dataset": "patches"}, "dataset: built-in model 'resnet_digits' has its own"),
    ],
)
def test_bad_multi_exit_models_are_one_line_config_errors(user_module, model, fields, message):
    with pytest.raises(ConfigError, match=message) as err:
        _edge(model.replace("MOD", f"mynets_{user_module}"), **fields)
    assert len(err.value.problems) == 1 and "\n" not in str(err.value)


def _federated(arch: str, **model):
    spec = {"kind": "federated", "rounds": 2, "clients": {"count": 10}, "clients_per_round": 4}
    return load_spec({**spec, "model": {"arch": arch, **model}})


def test_a_users_client_model_trains_stacked_and_its_size_is_what_clients_upload(user_module):
    narrow = run(_federated(f"mynets_{user_module}:small_net", kwargs={"hidden": 8}), seed=0).summary
    wide = run(_federated(f"mynets_{user_module}:small_net", kwargs={"hidden": 32}), seed=0).summary
    params = {h: (64 * h + h + h * 10 + 10) * 4 for h in (8, 32)}  # float32 bytes of one upload
    assert narrow["bytes_up"] / params[8] == wide["bytes_up"] / params[32] > 0
    assert narrow["final_accuracy"] > 0.3 and wide["final_accuracy"] > 0.3
    anchored = _federated(f"mynets_{user_module}:small_net", head="anchored", rep_dim=12)
    assert run(anchored, seed=0).summary["final_accuracy"] > 0.1  # the encoder outputs rep_dim values


@pytest.mark.parametrize(
    "arch, model, message",
    [
        ("mpl", {}, "model.arch: unknown model 'mpl'; did you mean 'mlp'"),
        ("nosuch_mod:net", {}, "model.arch: cannot import 'nosuch_mod:net'"),
        ("MOD:with_batch_norm", {}, "model.arch: .* has buffers .*no BatchNorm with running statistics"),
        ("MOD:wrong_width", {}, "model.arch: .* must return \\[batch, 10\\] logits"),
        ("MOD:small_net", {"kwargs": {"depth": 2}}, "model.kwargs: .* does not take"),
        ("mlp", {"kwargs": {"hidden": 2}}, "model.kwargs: built-in arch 'mlp' takes none"),
    ],
)
def test_bad_client_models_are_one_line_config_errors(user_module, arch, model, message):
    with pytest.raises(ConfigError, match=message) as err:
        _federated(arch.replace("MOD", f"mynets_{user_module}"), **model)
    assert len(err.value.problems) == 1


def _market(arch: str, **fields):
    group = {"name": "p", "count": 3, "budget": 30, "model": {"arch": arch, **fields.pop("model", {})}}
    return load_spec({"kind": "market", "users": 200, "predictors": [group], **fields})


def test_a_users_predictor_module_learns_exactly_as_the_built_in_it_equals(user_module):
    """nn.Linear on the general path (vmap of grad) draws the same fresh weights, batches and
    Adam steps as the built-in logistic predictor on its hand-written gradients."""
    built_in = run(_market("logistic"), seed=1).summary
    mine = run(_market(f"mynets_{user_module}:linear"), seed=1).summary
    assert mine["retrains"] > 3 and mine["purchases"] > 0
    assert mine == pytest.approx(built_in, rel=1e-6)
    deeper = run(_market(f"mynets_{user_module}:small_net", model={"kwargs": {"hidden": 8}}), seed=1).summary
    assert deeper["overall_quality"] > 0.3 and deeper != built_in


@pytest.mark.parametrize(
    "arch, fields, message",
    [
        ("logstic", {}, "predictors.0.model.arch: unknown model 'logstic'; did you mean 'logistic'"),
        ("MOD:with_batch_norm", {}, "predictors.0.model.arch: .* has buffers"),
        ("MOD:small_net", {"model": {"kwargs": {"width": 2}}}, "predictors.0.model.kwargs: .* does not take"),
        (
            "mlp",
            {"model": {"kwargs": {"width": 2}}},
            "predictors.0.model.kwargs: built-in arch 'mlp' takes none",
        ),
        ("MOD:linear", {"engine": "loop"}, "engine: 'loop' runs the built-in archs only"),
    ],
)
def test_bad_predictor_models_are_one_line_config_errors(user_module, arch, fields, message):
    with pytest.raises(ConfigError, match=message) as err:
        _market(arch.replace("MOD", f"mynets_{user_module}"), **fields)
    assert len(err.value.problems) == 1


@pytest.mark.parametrize(
    "scenario, field",
    [
        ({"kind": "edge", "model": "MOD:NoExits"}, "model: "),
        ({"kind": "federated", "model": {"arch": "MOD:with_batch_norm"}}, "model.arch: "),
        (
            {"kind": "market", "predictors": [{"model": {"arch": "MOD:not_a_module"}}]},
            "predictors.0.model.arch: ",
        ),
        ({"kind": "xr", "models": [{"name": "m", "fps": 10, "task": "nosuch_mod:net"}]}, "models.0.task: "),
    ],
)
def test_the_cli_refuses_a_bad_model_in_one_line_with_exit_2(user_module, tmp_path, capsys, scenario, field):
    import yaml

    from sim.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(scenario).replace("MOD", f"mynets_{user_module}"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {field}") and "\n" not in err and "Traceback" not in err, err


def test_the_torch_free_dataset_table_matches_what_the_models_see():
    from workloads import multiexit, shapes
    from workloads.edge.models import DATASETS

    for name in ("digits", "patches"):
        data = multiexit._dataset(name)
        assert DATASETS[name] == (tuple(data.images.shape[1:]), data.n_classes)
    assert DATASETS["shapes"] == ((3, shapes.PX, shapes.PX), len(shapes.CLASSES))


def test_validating_built_in_models_imports_no_torch():
    import subprocess

    code = (
        "import sys\n"
        "from sim.runner import load_spec\n"
        "load_spec({'kind': 'edge', 'model': 'vgg_shapes', 'exit_policy': {'name': 'entropy'}})\n"
        "load_spec({'kind': 'market', 'predictors': [{'model': {'arch': 'mlp'}}]})\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_an_edited_client_model_is_counted_again(user_module, tmp_path):
    """Its FLOP count is cached by the module classes' source too, not only by repr and shapes."""
    from workloads.federated.training import forward_flops_per_sample
    from workloads.user_models import build_stackable, materialise

    def flops() -> float:
        ref, fields = f"mynets_{user_module}:once_net", ("model.arch", "model.kwargs")
        model = materialise(build_stackable(ref, {}, fields, ("mlp",), (64,), 10))
        return forward_flops_per_sample(model, (64,))

    before = flops()
    path = tmp_path / f"mynets_{user_module}.py"
    once = "return super().forward(x.flatten(1))"
    path.write_text(path.read_text().replace(once, f"{once} + super().forward(x.flatten(1))"))
    _forget(user_module)
    assert flops() == 2 * before == 2 * 2 * 64 * 10


def test_the_general_market_path_gives_each_predictor_its_own_gradient():
    """ModuleGroup's one backward pass through the vmap-ed forward equals vmap(grad(...)) per
    predictor, for a non-linear module with padded points."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.func import functional_call, grad, vmap

    from workloads.market.predictors import ModuleGroup, Pool

    rng = np.random.default_rng(0)
    k, batch, d, c = 3, 5, 6, 4
    module = nn.Sequential(nn.Linear(d, 7), nn.Tanh(), nn.LayerNorm(7), nn.Linear(7, c))
    pool = Pool(rng.random((20, d)), rng.integers(0, c, 20), c)
    group = ModuleGroup(module, k, pool, lr=0.01)
    params = [torch.from_numpy(np.stack(p)) for p in zip(*(group.init(rng) for _ in range(k)))]
    x = torch.from_numpy(rng.random((k, batch, d), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, c, (k, batch)))
    valid = torch.ones(k, batch)
    valid[1, 3:] = 0  # a short last batch, padded
    weight = valid / valid.sum(1, keepdim=True)

    def loss(p, xb, yb, wb):
        logits = functional_call(module, dict(zip(group.names, p)), (xb,))
        return (F.cross_entropy(logits, yb, reduction="none") * wb).sum()

    theirs = vmap(grad(loss))(tuple(params), x, y, weight)
    for ours, value in zip(group._grads(params, x, y, weight), theirs, strict=True):
        torch.testing.assert_close(ours, value, rtol=1e-5, atol=1e-6)
    assert group.init(np.random.default_rng(1))[2].tolist() == [1.0] * 7  # LayerNorm scale starts at 1
