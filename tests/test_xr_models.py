"""The XR task models: they build, trace, cache, and cost what the reference says."""

import pytest
import torch

from devices.cost import cost_table, extract_layers
from devices.hardware import preset
from sim.errors import ConfigError
from workloads.xr import models
from workloads.xr.models import TASKS, build_model, example_input, task_layers

# XRBench reference run (VR gaming, Single_4K, WS), seconds per inference
REFERENCE_LATENCY_S = {
    "eye_segmentation": 1.503e-3,
    "gaze_estimation": 4.222e-3,
    "hand_tracking": 8.562e-3,
}
# the shortest frame period each task runs at in the reference scenarios
FRAME_PERIOD_S = {
    "eye_segmentation": 1 / 60,
    "gaze_estimation": 1 / 60,
    "hand_tracking": 1 / 45,
    "depth_estimation": 1 / 30,
    "keyword_detection": 1 / 3,
    "speech_recognition": 1 / 3,
    "semantic_segmentation": 1 / 10,
    "object_detection": 1 / 30,
    "plane_detection": 1 / 15,
    "action_segmentation": 1 / 30,
}


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TESTBED_CACHE", str(tmp_path_factory.mktemp("cache")))
        task_layers.cache_clear()
        yield {task: task_layers(task) for task in TASKS}
    task_layers.cache_clear()


@pytest.fixture(scope="module")
def single_4k_latency_s(layers):
    system = preset("Single_4K", "WS")
    return {task: float(cost_table(task, ls, system)[0].sum()) for task, ls in layers.items()}


def test_every_task_traces_to_mac_layers(layers):
    assert set(layers) == set(FRAME_PERIOD_S)
    for task, task_ls in layers.items():
        assert sum(layer.macs > 0 for layer in task_ls) > 0, task
        assert len({layer.name for layer in task_ls}) == len(task_ls), task


def test_second_call_hits_process_cache(layers):
    first = task_layers("gaze_estimation")
    hits = task_layers.cache_info().hits
    assert task_layers("gaze_estimation") is first
    assert task_layers.cache_info().hits == hits + 1


def test_fresh_process_reads_disk_cache_instead_of_tracing(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_CACHE", str(tmp_path))
    task_layers.cache_clear()
    traced = task_layers("keyword_detection")
    assert len(list(tmp_path.glob("xr-layers-keyword_detection-*.json"))) == 1

    def no_tracing(*args, **kwargs):
        raise AssertionError("traced again despite the disk cache")

    monkeypatch.setattr(models, "extract_layers", no_tracing)
    task_layers.cache_clear()
    assert task_layers("keyword_detection") == traced
    task_layers.cache_clear()


def test_unknown_task_lists_known_tasks():
    with pytest.raises(ConfigError, match="unknown task 'pose'; known tasks: eye_segmentation, gaze"):
        task_layers("pose")


@pytest.mark.parametrize("task", sorted(REFERENCE_LATENCY_S))
def test_single_4k_latency_within_2x_of_reference(single_4k_latency_s, task):
    ratio = single_4k_latency_s[task] / REFERENCE_LATENCY_S[task]
    assert 0.5 <= ratio <= 2.0, f"{task}: {single_4k_latency_s[task] * 1e3:.3f} ms"


def test_every_task_fits_its_frame_period_on_single_4k(single_4k_latency_s):
    for task, latency_s in single_4k_latency_s.items():
        assert 0 < latency_s < FRAME_PERIOD_S[task], task


def test_real_weights_come_from_the_seed_not_global_rng():
    state = torch.random.get_rng_state()
    a = build_model("keyword_detection", device="cpu", seed=1)
    b = build_model("keyword_detection", device="cpu", seed=1)
    c = build_model("keyword_detection", device="cpu", seed=2)
    assert torch.equal(state, torch.random.get_rng_state())
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["conv0.weight"], pc["conv0.weight"])
    out = a(example_input("keyword_detection", device="cpu"))
    assert out.shape == (1, 12) and torch.isfinite(out).all()


def test_cpu_trace_matches_meta_trace():
    cpu = extract_layers(
        build_model("action_segmentation", "cpu"), example_input("action_segmentation", "cpu")
    )
    assert cpu == extract_layers(build_model("action_segmentation"), example_input("action_segmentation"))
