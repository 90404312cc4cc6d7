"""The one exception type a user's mistake raises; the CLI prints it and exits 2."""


class ConfigError(ValueError):
    """Bad user input. Each entry of ``problems`` is one line naming field, value, allowed."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PolicyError(ConfigError):
    """A policy raised while deciding: one line naming the policy, the call and the error.

    ``debug_traceback`` keeps the full traceback for ``--debug``.
    """

    def __init__(self, problem: str, debug_traceback: str = ""):
        super().__init__(problem)
        self.debug_traceback = debug_traceback
