"""Data-acquisition (purchase) policies: whether a predictor buys a user's labelled point.

Every module in this folder is imported, so a new policy is one new file.
"""

from sim.registry import import_submodules

import_submodules(__name__, __path__)
