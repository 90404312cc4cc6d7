"""The one exception type a user's mistake raises; the CLI prints it and exits 2."""

from typing import Any


class ConfigError(ValueError):
    """Bad user input. Each entry of ``problems`` is one line naming field, value, allowed."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PolicyError(ConfigError):
    """A policy raised or returned an invalid decision: one line naming the policy, the call
    and the error or the bad value.

    ``debug_traceback`` keeps the full traceback for ``--debug``.
    """

    def __init__(self, problem: str, debug_traceback: str = ""):
        super().__init__(problem)
        self.debug_traceback = debug_traceback


def bad_decision(policy: object, call: str, value: Any, need: str, part: str = "") -> PolicyError:
    """The one-line error for a policy whose ``call`` returned ``value`` (or, with ``part``, a
    value whose ``part`` is ``value``), which is not ``need``.

    Worlds check what a policy returns where it is used, so a wrong value stops the run
    naming the policy rather than failing later deep inside the engine.
    """
    from sim import registry

    family, name = registry.policy_of(type(policy)) or ("", type(policy).__name__)
    who = f"{family} policy {name!r}".lstrip()
    shown = " ".join(repr(value).split())  # numpy spreads a long array over lines
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    returned = f"{part} {shown}" if part else shown
    return PolicyError(f"{who}: {call}() returned {returned}; need {need}", "")
