"""Names and widths of the built-in supernets, importable without torch (for validation).

:mod:`workloads.supernet` defines and trains them; a test checks that the names agree.
"""

from sim.errors import ConfigError

SUPERNETS: tuple[str, ...] = ("digits_slimmable", "xr_slimmable")
WIDTHS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)


def check_name(name: str) -> None:
    """ConfigError unless ``name`` is a built-in supernet."""
    if name not in SUPERNETS:
        raise ConfigError(f"supernet: unknown supernet {name!r}; known supernets: {', '.join(SUPERNETS)}")


def supernet_widths(name: str) -> tuple[float, ...]:
    """The widths of supernet ``name``, without training or loading it."""
    check_name(name)
    return WIDTHS
