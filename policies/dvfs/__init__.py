"""DVFS governors: which operating point the next request runs at.

Every module in this folder is imported, so a new governor is one new file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
