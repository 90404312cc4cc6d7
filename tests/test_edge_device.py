"""The DVFS edge device: power and time model, presets, config errors, exact energy and battery."""

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from devices.edge import PRESET_NAMES, EdgeDevice, EdgeDeviceConfig, OperatingPoint, voltage_curve
from sim.config import validate
from sim.errors import ConfigError

NANO_MHZ = [76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6, 614.4, 691.2, 768.0, 844.8, 921.6]
XAVIER_MHZ = [114.75, 216.75, 318.75, 420.75, 522.75, 624.75, 675.75, 828.75, 905.25, 1032.75, 1198.5]
XAVIER_MHZ += [1236.75, 1338.75, 1377.0]


def _config(**over):
    """Round numbers: points at 1, 2, 4 GHz; busy power 1 + V^2 f / 1e9 W."""
    data = {
        "points": [
            {"freq_hz": 1e9, "voltage_v": 0.5},
            {"freq_hz": 2e9, "voltage_v": 0.75},
            {"freq_hz": 4e9, "voltage_v": 1.0},
        ],
        "macs_per_cycle": 10.0,
        "memory_bandwidth_bytes_per_s": 1e9,
        "p_static_w": 1.0,
        "c_eff_f": 1e-9,
        "idle_power_w": 0.5,
        "switch_latency_s": 0.1,
        "switch_energy_j": 0.2,
    }
    return EdgeDeviceConfig(**{**data, **over})


def _problems(data):
    with pytest.raises(ConfigError) as err:
        validate(EdgeDeviceConfig, data, prefix="device")
    return err.value.problems


# -- the model -----------------------------------------------------------------------
def test_power_at_a_point_follows_the_formula():
    cfg = _config()
    for p in cfg.points:
        assert cfg.power_w(p, busy=True) == pytest.approx(1.0 + 1e-9 * p.voltage_v**2 * p.freq_hz)
        assert cfg.power_w(p, busy=False) == 0.5  # idle power does not depend on the point
    assert cfg.power_w(cfg.points[2], busy=True) == pytest.approx(5.0)


def test_compute_time_scales_with_one_over_f_and_memory_time_does_not():
    cfg = _config()
    slow, fast = cfg.points[0], cfg.points[2]
    assert cfg.execution_s(4e9, 0, slow) == pytest.approx(0.4)
    assert cfg.execution_s(4e9, 0, fast) == pytest.approx(0.1)  # 4x the frequency, 1/4 the time
    assert cfg.execution_s(0, 3e9, slow) == cfg.execution_s(0, 3e9, fast) == pytest.approx(3.0)
    assert cfg.execution_s(4e9, 3e9, fast) == pytest.approx(3.1)  # additive
    device = EdgeDevice(simpy.Environment(), cfg)
    assert device.execution_s(4e9, 3e9, 2) == pytest.approx(3.1)


def test_achievable_fraction_of_peak_and_per_layer_overhead():
    cfg = _config(peak_fraction=0.25, layer_overhead_s=1e-3)
    slow = cfg.points[0]
    assert cfg.execution_s(4e9, 0, slow) == pytest.approx(1.6)  # a quarter of the peak rate
    assert cfg.execution_s(4e9, 0, slow, layers=10) == pytest.approx(1.61)  # plus 1 ms per layer
    assert cfg.execution_s(0, 0, cfg.points[2], layers=10) == pytest.approx(0.01)  # not scaled by f
    assert EdgeDevice(simpy.Environment(), cfg).execution_s(4e9, 0, 0, 10) == pytest.approx(1.61)
    problems = _problems({**_config().model_dump(), "peak_fraction": 1.5, "layer_overhead_s": -1})
    assert len(problems) == 2 and all(
        p.startswith(("device.peak_fraction", "device.layer_overhead_s")) for p in problems
    )


def test_every_preset_has_overhead_and_the_nano_5w_mode_is_capped():
    for name in PRESET_NAMES:
        cfg = EdgeDeviceConfig(preset=name)
        assert 0 < cfg.peak_fraction <= 1 and cfg.layer_overhead_s > 0
    five, ten = EdgeDeviceConfig(preset="jetson_nano_gpu_5w"), EdgeDeviceConfig(preset="jetson_nano_gpu")
    assert five.points[-1].freq_hz <= 640e6 < ten.points[-1].freq_hz
    assert [p.freq_hz for p in five.points] == [p.freq_hz for p in ten.points if p.freq_hz <= 640e6]
    assert five.power_w(five.points[-1], True) < ten.power_w(ten.points[-1], True)
    assert five.layer_overhead_s > ten.layer_overhead_s  # two CPU cores launch the kernels
    assert len(EdgeDeviceConfig(preset="host").points) == 1


def test_presets_have_the_reference_frequency_steps():
    nano = EdgeDeviceConfig(preset="jetson_nano_gpu")
    assert [p.freq_hz for p in nano.points] == [round(m * 1e6) for m in NANO_MHZ]
    xavier = EdgeDeviceConfig(preset="jetson_xavier_gpu")
    assert [p.freq_hz for p in xavier.points] == [round(m * 1e6) for m in XAVIER_MHZ]
    assert EdgeDeviceConfig().preset == "jetson_nano_gpu"  # the default


@pytest.mark.parametrize(
    "name, low_w, high_w",
    [
        ("jetson_nano_gpu", (1, 5), (5, 10)),
        ("jetson_xavier_gpu", (2, 10), (10, 30)),
        ("mobile_cpu", (0.3, 2), (2, 5)),
    ],
)
def test_preset_power_is_plausible_and_rises_with_frequency(name, low_w, high_w):
    cfg = EdgeDeviceConfig(preset=name)
    power = [cfg.power_w(p, busy=True) for p in cfg.points]
    assert power == sorted(power) and len(set(power)) == len(power)
    assert low_w[0] <= power[0] <= low_w[1]
    assert high_w[0] <= power[-1] <= high_w[1]
    assert cfg.idle_power_w <= power[0]
    volts = [p.voltage_v for p in cfg.points]
    assert volts[0] == cfg.v_min_v and volts[-1] == pytest.approx(cfg.v_max_v)


def test_preset_voltages_follow_the_linear_curve_and_can_be_reshaped():
    cfg = EdgeDeviceConfig(preset="mobile_cpu", v_max_v=1.2, battery_j=1000.0)
    freqs = [p.freq_hz for p in cfg.points]
    assert [p.voltage_v for p in cfg.points] == voltage_curve(freqs, 0.6, 1.2)
    assert cfg.points[-1].voltage_v == pytest.approx(1.2)
    assert cfg.battery_j == 1000.0 and cfg.p_static_w == 0.5  # the rest from the preset
    # the resolved config validates back to itself
    assert EdgeDeviceConfig.model_validate(cfg.model_dump(mode="json")) == cfg


# -- config errors -------------------------------------------------------------------
def test_unsorted_non_positive_and_falling_voltage_tables_name_the_field():
    points = [
        {"freq_hz": 1e9, "voltage_v": 0.6},
        {"freq_hz": 3e9, "voltage_v": 0.8},
        {"freq_hz": 2e9, "voltage_v": 0.7},
    ]
    problems = _problems({**_config().model_dump(), "points": points})
    assert problems == [
        "device.points.2.freq_hz: must be above points.1.freq_hz 3e+09: list points by increasing "
        "frequency (got 2e+09)",
        "device.points.2.voltage_v: must be at least points.1.voltage_v 0.8: voltage may not fall "
        "as frequency rises (got 0.7)",
    ]
    bad = [*points[:2], {"freq_hz": 4e9, "voltage_v": 0.9}, {"freq_hz": -1.0, "voltage_v": 1.0}]
    problems = _problems({**_config().model_dump(), "points": bad})
    assert len(problems) == 1 and problems[0].startswith(
        "device.points.3.freq_hz: Input should be greater than 0"
    )
    with pytest.raises(ValidationError, match="voltage_v"):
        OperatingPoint(freq_hz=1e9, voltage_v=0)


def test_other_config_mistakes_give_one_line_each():
    assert _problems({"preset": "jetson_tx2"}) == [
        "device.preset: unknown preset 'jetson_tx2'; known presets: " + ", ".join(PRESET_NAMES)
    ]
    assert _problems({"preset": "mobile_cpu", "v_min_v": 1.2}) == [
        "device.v_max_v: must be at least v_min_v 1.2 (got 1.05)"
    ]
    problems = _problems({"preset": "mobile_cpu", "battery_j": 0, "idle_power_w": 9, "watts": 1})
    assert sorted(problems) == [
        "device.battery_j: Input should be greater than 0 (got 0)",
        "device.watts: unknown key (got 1)",
    ]
    problems = _problems({"preset": "mobile_cpu", "idle_power_w": 9})
    assert problems == [
        "device.idle_power_w: must not exceed the busy power at the lowest point, 0.7376 W (got 9)"
    ]
    problems = _problems({**_config().model_dump(), "v_max_v": 1.1})
    assert problems[0].startswith("device.v_max_v: must equal points.2.voltage_v 1")


# -- energy accounting ----------------------------------------------------------------
def test_energy_is_the_integral_of_power_over_a_scripted_timeline():
    cfg = _config()
    env = simpy.Environment()
    device = EdgeDevice(env, cfg)
    results = []

    def script():
        yield env.timeout(1.0)  # idle at point 0
        results.append((yield device.switch_to(2)))  # 0.1 s switch
        results.append((yield device.execute(0.5)))  # busy at 4 GHz
        yield env.timeout(0.3)  # idle
        results.append((yield device.switch_to(2)))  # already there: free
        results.append((yield device.execute(0.2)))
        results.append((yield device.switch_to(0)))
        results.append((yield device.execute(0.4)))  # busy at 1 GHz

    env.process(script())
    env.run()
    device.finish(3.0)
    busy = [1.0 + 1e-9 * p.voltage_v**2 * p.freq_hz for p in cfg.points]
    switch_w = 0.5 + 0.2 / 0.1  # idle power plus the switch energy spread over its latency
    timeline = [  # (power, seconds)
        (0.5, 1.0),
        (switch_w, 0.1),
        (busy[2], 0.5),
        (0.5, 0.3),
        (busy[2], 0.2),
        (switch_w, 0.1),
        (busy[0], 0.4),
        (0.5, 3.0 - 2.6),
    ]
    assert results == [True] * 6
    assert device.energy_j == pytest.approx(sum(p * s for p, s in timeline), rel=1e-12)
    assert device.busy_s == pytest.approx([0.4, 0.0, 0.7])
    assert device.idle_s == pytest.approx(1.7) and device.switch_s == pytest.approx(0.2)
    assert device.switches == 2 and device.current == 0
    env.run(until=5.0)  # closed at 3 s: no longer grows
    assert device.energy_j == pytest.approx(sum(p * s for p, s in timeline), rel=1e-12)


def test_instant_switch_charges_its_energy_at_once_and_finish_prorates_a_running_stretch():
    env = simpy.Environment()
    device = EdgeDevice(env, _config(switch_latency_s=0.0), start_point=2)

    def script():
        assert (yield device.switch_to(1)) is True
        yield device.execute(10.0)

    env.process(script())
    env.run(until=2.0)
    assert env.now == 2.0 and device.state == "busy" and device.current == 1
    assert device.energy_j == pytest.approx(0.2 + (1.0 + 0.75**2 * 2.0) * 2.0)
    device.finish(2.0)
    assert device.busy_s[1] == pytest.approx(2.0) and device.switches == 1


def test_utilisation_is_the_busy_share_of_the_window():
    env = simpy.Environment()
    device = EdgeDevice(env, _config())
    assert device.utilisation(1.0) == 0.0

    def script():
        yield device.execute(0.25)
        yield env.timeout(0.5)
        yield device.execute(1.0)

    env.process(script())
    env.run(until=0.5)
    assert device.utilisation(1.0) == pytest.approx(0.5)  # only 0.5 s have passed
    env.run(until=1.0)
    assert device.utilisation(1.0) == pytest.approx(0.5)  # 0.25 + 0.25 (running) of 1 s
    assert device.utilisation(0.5) == pytest.approx(0.5)
    env.run(until=1.75)
    assert device.utilisation(1.0) == pytest.approx(1.0)  # switching would not count; executing does


# -- battery --------------------------------------------------------------------------
def test_battery_depletes_at_the_exact_crossing_time_inside_a_busy_stretch():
    battery_j = 4.0
    env = simpy.Environment()
    device = EdgeDevice(env, _config(battery_j=battery_j), start_point=2)
    outcome = []

    def script():
        yield env.timeout(1.0)  # idle: 0.5 J
        outcome.append((yield device.execute(5.0)))  # 5 W: would need 25 J
        outcome.append((env.now, (yield device.execute(1.0))))
        outcome.append((yield device.switch_to(0)))

    env.process(script())
    env.run()
    crossing_s = 1.0 + (battery_j - 0.5) / 5.0
    assert device.depleted_at_s == pytest.approx(crossing_s, rel=1e-15)
    assert device.depleted.value == device.depleted_at_s
    assert outcome == [False, (device.depleted_at_s, False), False]  # it stops serving
    assert device.energy_j == battery_j and device.state == "depleted"
    assert device.busy_s[2] == pytest.approx(crossing_s - 1.0)
    device.finish(100.0)
    assert device.energy_j == battery_j


def test_battery_depletes_while_idle_and_while_switching_at_the_exact_time():
    env = simpy.Environment()
    idle = EdgeDevice(env, _config(battery_j=1.0))  # 0.5 W idle: empty at 2 s
    env.run(until=10.0)
    assert idle.depleted_at_s == 2.0 and idle.energy_j == 1.0 and idle.idle_s == 2.0

    env = simpy.Environment()
    device = EdgeDevice(env, _config(battery_j=0.2))
    device.switch_to(1)  # 2.5 W while switching
    env.run()
    assert device.depleted_at_s == pytest.approx(0.2 / 2.5) and device.current == 0  # mid-switch


def test_finish_before_the_idle_timer_still_finds_the_crossing():
    env = simpy.Environment()
    device = EdgeDevice(env, _config(battery_j=1.0))
    device.finish(3.0)  # the clock never ran: the crossing at 2 s is found when closing
    assert device.depleted_at_s == 2.0 and device.energy_j == 1.0


def test_one_stretch_at_a_time_and_indices_are_checked():
    env = simpy.Environment()
    device = EdgeDevice(env, _config())
    device.execute(1.0)
    with pytest.raises(RuntimeError, match="busy"):
        device.execute(1.0)
    with pytest.raises(RuntimeError, match="busy"):
        device.switch_to(1)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        device.switch_to(3)
    with pytest.raises(ValueError, match="duration_s"):
        device.execute(-1.0)
    env.run()
    assert device.switch_to(np.int64(1)).value is True  # NumPy indices are fine


ACTIONS = st.lists(
    st.tuples(st.sampled_from(["idle", "switch", "execute"]), st.floats(0.0, 2.0), st.integers(0, 2)),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    actions=ACTIONS, latency_s=st.sampled_from([0.0, 0.1]), battery_j=st.one_of(st.none(), st.floats(0.5, 20))
)
def test_energy_and_depletion_match_an_independent_integral_of_any_timeline(actions, latency_s, battery_j):
    cfg = _config(switch_latency_s=latency_s, battery_j=battery_j)
    env = simpy.Environment()
    device = EdgeDevice(env, cfg)

    def script():
        for kind, seconds, index in actions:
            if kind == "idle":
                yield env.timeout(seconds)
            elif kind == "switch":
                yield device.switch_to(index)
            else:
                yield device.execute(seconds)

    env.process(script())
    env.run()
    end_s = env.now + 0.5
    device.finish(end_s)

    # the same timeline as (power, seconds, energy charged at its start) stretches
    busy_w = [cfg.power_w(p, busy=True) for p in cfg.points]
    stretches, current = [], 0
    for kind, seconds, index in actions:
        if kind == "idle":
            stretches.append((0.5, seconds, 0.0))
        elif kind == "execute":
            stretches.append((busy_w[current], seconds, 0.0))
        elif index != current:
            stretches.append((0.5 + 0.2 / latency_s, latency_s, 0.0) if latency_s else (0.0, 0.0, 0.2))
            current = index
    stretches.append((0.5, end_s - sum(s for _, s, _ in stretches), 0.0))
    energy_j, t, crossing_s = 0.0, 0.0, None
    for power, seconds, impulse_j in stretches:
        if battery_j is not None and crossing_s is None:
            if energy_j + impulse_j >= battery_j:
                crossing_s = t
            elif energy_j + impulse_j + power * seconds >= battery_j:
                crossing_s = t + (battery_j - energy_j - impulse_j) / power
        energy_j += impulse_j + power * seconds
        t += seconds
    if crossing_s is None:
        assert device.depleted_at_s is None
        assert device.energy_j == pytest.approx(energy_j, rel=1e-9)
    else:
        assert device.depleted_at_s == pytest.approx(crossing_s, rel=1e-9, abs=1e-12)
        assert device.energy_j == battery_j


def test_a_profile_sets_the_estimates_governors_see():
    env = simpy.Environment()
    nano = EdgeDeviceConfig(preset="jetson_nano_gpu")
    device = EdgeDevice(env, nano)
    macs, moved, layers = 4e6, 2e5, 40
    analytic = [device.execution_s(macs, moved, i, layers) for i in range(len(nano.points))]
    measured = [3.0 * a + 1e-4 * i for i, a in enumerate(analytic)]
    watts = [2.0 + 0.1 * i for i in range(len(nano.points))]
    device.use_profile(measured, watts, macs, moved, layers)
    for i in range(len(nano.points)):
        assert device.execution_s(macs, moved, i, layers) == pytest.approx(measured[i], rel=1e-12)
        assert device.execution_s(macs / 2, moved / 2, i, layers // 2) == pytest.approx(
            measured[i] / 2, rel=1e-12
        )
        assert device.busy_power_w(i) == watts[i] != nano.power_w(nano.points[i], busy=True)
    device.execute(0.5)  # no power given: the profile's power at the current point
    env.run()
    assert device.energy_j == pytest.approx(0.5 * watts[0])


def test_execution_table_gives_the_same_floats_as_execution_s():
    device = EdgeDevice(simpy.Environment(), EdgeDeviceConfig(preset="jetson_nano_gpu"))
    rng = np.random.Generator(np.random.PCG64(3))
    macs, moved, layers = rng.uniform(0, 1e7, 50), rng.uniform(0, 1e6, 50), rng.integers(0, 40, 50)
    table = device.execution_table(macs, moved, layers)
    assert table.tolist() == [
        [device.execution_s(m, b, i, int(n)) for i in range(len(device.points))]
        for m, b, n in zip(macs.tolist(), moved.tolist(), layers)
    ]
