"""Scheduling policies: which ready job runs next, and on which accelerator."""

from policies.scheduling import edf, edp_greedy, fcfs, latency_greedy, round_robin  # noqa: F401
