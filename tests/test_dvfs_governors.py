"""DVFS governors on hand-made cases, and one on a real edge device serving requests."""

import pytest
import simpy

import policies.dvfs  # noqa: F401  (registers the family)
from devices.edge import EdgeDevice, EdgeDeviceConfig, OperatingPoint
from policies.dvfs.base import Work
from sim import registry
from sim.config import PolicyRef, validate
from sim.errors import ConfigError

POINTS = [OperatingPoint(freq_hz=f * 1e9, voltage_v=v) for f, v in ((1, 0.6), (2, 0.7), (3, 0.8), (4, 0.9))]


class FakeDevice:
    """One MAC per cycle, no memory time, 0.1 s per layer; fixed utilisation."""

    def __init__(self, current=0, utilisation=0.0, switch_latency_s=0.0):
        self.current = current
        self.switch_latency_s = switch_latency_s
        self._utilisation = utilisation
        self.windows = []

    def execution_s(self, macs, bytes_moved, point_index, layers=0):
        return macs / POINTS[point_index].freq_hz + 0.1 * layers

    def utilisation(self, window_s):
        self.windows.append(window_s)
        return self._utilisation


class GovernorRef(PolicyRef):
    family = "dvfs"


ONE_GIGA_MAC = Work(1e9, 0, 1e9, 0)


def _select(name, work=ONE_GIGA_MAC, deadline_s=1.0, now=0.0, device=None, **params):
    governor = registry.get("dvfs", name)(**params)
    return governor.select(POINTS, work, deadline_s, now, device or FakeDevice())


def test_every_governor_is_registered():
    assert {"performance", "powersave", "ondemand", "deadline_aware", "predictive"} <= set(
        registry.names("dvfs")
    )


def test_performance_and_powersave_pick_the_ends():
    assert _select("performance") == 3
    assert _select("powersave", deadline_s=0.0) == 0


def test_deadline_aware_picks_the_lowest_feasible_point():
    work = Work(macs=1e9, bytes_moved=0, full_macs=5e9, full_bytes_moved=0)
    # 5e9 cycles in 2 s: 1 GHz (5 s) and 2 GHz (2.5 s) miss, 3 GHz (1.67 s) fits
    assert _select("deadline_aware", work, deadline_s=12.0, now=10.0) == 2
    assert _select("deadline_aware", work, deadline_s=12.5, now=10.0) == 1  # 2.5 s fits exactly
    assert _select("deadline_aware", work, deadline_s=11.0, now=10.0) == 3  # none fits: the highest
    assert _select("deadline_aware", work, deadline_s=9.0, now=10.0) == 3  # already late


def test_deadline_aware_counts_the_layer_overhead():
    work = Work(0, 0, 4e9, 0, full_layers=5)  # 1 s at 4 GHz, 1.33 s at 3 GHz, plus 0.5 s of layers
    assert _select("deadline_aware", work, deadline_s=1.9) == 2
    assert _select("deadline_aware", work, deadline_s=1.6) == 3


def test_deadline_aware_counts_the_switch_latency():
    work = Work(0, 0, 5e9, 0)
    # 2.5 s at 2 GHz fits 2.55 s only without the 0.1 s switch
    assert _select("deadline_aware", work, 2.55, device=FakeDevice(1, switch_latency_s=0.1)) == 1
    assert _select("deadline_aware", work, 2.55, device=FakeDevice(0, switch_latency_s=0.1)) == 2


def test_predictive_sets_f_max_times_jump_over_remaining_at_each_prediction():
    governor = registry.get("dvfs", "predictive")()
    device = FakeDevice(current=3)
    assert governor.select(POINTS, ONE_GIGA_MAC, 1.0, 0.0, device) == 3  # before any prediction: f_max
    # f_max = 4 GHz: jump 1 of 4 left -> 1 GHz; 2 of 4 -> 2 GHz; 3 of 5 -> 2.4 GHz, nearest 2 GHz
    assert governor.on_prediction(POINTS, 1, 4, device) == 0
    assert governor.on_prediction(POINTS, 2, 4, device) == 1
    assert governor.on_prediction(POINTS, 3, 5, device) == 1
    assert governor.on_prediction(POINTS, 5, 8, device) == 2  # 2.5 GHz: a tie goes to the higher step
    assert governor.on_prediction(POINTS, 1, 40, device) == 0  # below the lowest step: the lowest
    assert governor.on_prediction(POINTS, 4, 4, device) == 3
    assert governor.after_exit(POINTS, device) == 3


def test_ondemand_reacts_to_utilisation():
    busy = FakeDevice(current=1, utilisation=0.9)
    assert _select("ondemand", device=busy) == 3  # above up_threshold: the highest
    assert busy.windows == [0.1]
    # below: lowest point with f >= f_current * u / target = 2 GHz * u / 0.7
    assert _select("ondemand", device=FakeDevice(1, utilisation=0.3)) == 0  # 0.86 GHz -> 1 GHz
    assert _select("ondemand", device=FakeDevice(1, utilisation=0.7)) == 1  # 2 GHz
    assert _select("ondemand", device=FakeDevice(1, utilisation=0.75)) == 2  # 2.14 GHz -> 3 GHz
    assert _select("ondemand", device=FakeDevice(3, utilisation=0.0)) == 0
    assert _select("ondemand", device=FakeDevice(1, utilisation=0.5), up_threshold=0.4, target=0.4) == 3
    assert _select("ondemand", device=FakeDevice(1, utilisation=0.5), window_s=1.0, target=0.5) == 1


def test_ondemand_params_are_checked():
    with pytest.raises(ConfigError) as err:
        validate(
            GovernorRef, {"name": "ondemand", "params": {"target": 0.9, "window_s": 0}}, prefix="governor"
        )
    assert sorted(err.value.problems) == [
        "governor.params.window_s: Input should be greater than 0 (got 0)",
    ]
    with pytest.raises(ConfigError) as err:
        validate(GovernorRef, {"name": "ondemand", "params": {"target": 0.9}}, prefix="governor")
    assert err.value.problems == ["governor.params.target: must be at most up_threshold 0.8 (got 0.9)"]
    with pytest.raises(ConfigError, match="takes none"):
        validate(GovernorRef, {"name": "deadline_aware", "params": {"margin": 1}})


def _serve(governor_name, n=20, period_s=0.05):
    """Requests of a fixed network every ``period_s`` on a Jetson Nano, deadline one period."""
    env = simpy.Environment()
    device = EdgeDevice(env, EdgeDeviceConfig(preset="jetson_nano_gpu"))
    governor = GovernorRef(name=governor_name).build()
    work = Work(macs=1.0e8, bytes_moved=2e7, full_macs=1.0e8, full_bytes_moved=2e7)
    lateness = []

    def server():
        for k in range(n):
            yield env.timeout(max(0.0, k * period_s - env.now))
            deadline_s = env.now + period_s
            i = governor.select(device.points, work, deadline_s, env.now, device)
            yield device.switch_to(i)
            yield device.execute(device.execution_s(work.macs, work.bytes_moved, i))
            lateness.append(env.now - deadline_s)

    env.process(server())
    env.run()
    device.finish(n * period_s)
    return device, lateness


def test_deadline_aware_on_a_device_meets_deadlines_with_less_energy_than_performance():
    fast, fast_late = _serve("performance")
    slow, slow_late = _serve("deadline_aware")
    assert max(fast_late) <= 0 and max(slow_late) <= 1e-12
    assert slow.energy_j < fast.energy_j
    assert slow.busy_s[-1] == 0.0 and sum(fast.busy_s[:-1]) == 0.0
