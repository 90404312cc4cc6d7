"""``testbed describe``, ``--version``, fixed backend choices and "did you mean"."""

import pytest

from sim import registry
from sim.cli import main
from sim.describe import describe
from sim.errors import ConfigError


def test_describe_a_kind_flattens_nested_fields_with_ranges(capsys):
    assert main(["describe", "xr"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scenario xr: ")
    line = next(x for x in out.splitlines() if x.split()[0] == "load_scale")
    assert "float = 1.0" in line and "range > 0" in line and "multiplies every stream's fps" in line
    assert any(x.split()[0] == "models.N.fps" for x in out.splitlines())
    assert any(x.split()[0] == "hardware.accelerators.N.num_pes" for x in out.splitlines())


def test_describe_a_policy_lists_every_param():
    lines = describe(["scheduling", "sdrm3"])
    params = registry.get("scheduling", "sdrm3").Params.model_fields
    assert [x.split()[0] for x in lines[1:]] == list(params)
    assert any("fairness_decay" in x and ">= 0.0, < 1.0" in x for x in lines)
    assert describe(["acquisition", "none"])[1:] == ["  (no parameters)"]


@pytest.mark.parametrize(
    "target, message",
    [
        (["scheduling", "sdmr3"], "did you mean 'sdrm3'?"),
        (["xrr"], "did you mean 'xr'?"),
        (["schedulers", "fcfs"], "unknown family 'schedulers'"),
        (["a", "b", "c"], "give a scenario kind"),
    ],
)
def test_describe_errors_are_one_line(target, message, capsys):
    assert main(["describe", *target]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_version_and_backend_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("testbed ")
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "x.yaml", "--backend", "dask"])
    assert exit_.value.code == 2 and "invalid choice: 'dask'" in capsys.readouterr().err


def test_unknown_policy_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'edf'"):
        registry.get("scheduling", "edff")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("duraton_s=1", "duraton_s: unknown key (got 1); did you mean 'duration_s'?"),
        ("models.0.fpss=3", "models.0.fpss: unknown key (got 3); did you mean 'fps'?"),
        ("hardware.presett=x", "did you mean 'preset'?"),
        ("scheduler.params.adaptt=1", "scheduler.params.adaptt: unknown key (got 1); did you mean 'adapt'?"),
    ],
)
def test_unknown_key_suggests_the_closest_field(override, expected, capsys):
    from pathlib import Path

    path = Path(__file__).parents[1] / "scenarios" / "xr" / "ar_gaming.yaml"
    assert main(["validate", str(path), "--set", "scheduler.name=sdrm3", "--set", override]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err


def _config_models():
    """Every config model reachable from the sweep file, the kinds' Specs and the policies' Params."""
    from pydantic import BaseModel

    from sim.describe import _nested
    from sim.sweep import SweepSpec

    roots = [SweepSpec]
    for family in registry.families():
        for name in registry.names(family):
            cls = registry.get(family, name)
            if cls.__module__.startswith(("test_", "tests.")):  # a test's own plugin, not shipped
                continue
            roots.append(getattr(cls, "Spec" if family == "scenario" else "Params", None))
    seen, stack = [], [r for r in roots if isinstance(r, type) and issubclass(r, BaseModel)]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.append(model)
        stack += [m for f in model.model_fields.values() if (m := _nested(f.annotation)[0]) is not None]
    return seen


def test_every_config_field_has_a_description():
    models = _config_models()
    modules = {m.__module__ for m in models}
    assert {
        "sim.sweep",
        "devices.clients",
        "devices.edge",
        "devices.hardware",
        "workloads.streams",
    } <= modules
    assert any(m.__module__.startswith("policies.federated") for m in models)
    missing = [
        f"{m.__module__}.{m.__name__}.{name}"
        for m in models
        for name, field in m.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not missing, missing


@pytest.mark.parametrize("target", [["federated"], ["edge"], ["market"], ["xr"], ["selection", "oort"]])
def test_describe_prints_a_description_on_every_line(target):
    lines = describe(target)
    assert len(lines) > 2 and all(" -- " in line for line in lines[1:]), [x for x in lines if " -- " not in x]
