"""User-choice rules: which competing predictor an arriving user picks.

Every module in this folder is imported, so a new rule is one new file.
"""

from sim.registry import import_submodules

import_submodules(__name__, __path__)
