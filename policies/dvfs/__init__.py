"""DVFS governors: which operating point the next request runs at.

Every module in this folder is imported, so a new governor is one new file.
"""

from sim.registry import import_submodules

import_submodules(__name__, __path__)
