"""The one exception type a user's mistake raises; the CLI prints it and exits 2."""


class ConfigError(ValueError):
    """Bad user input. Each entry of ``problems`` is one line naming field, value, allowed."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
