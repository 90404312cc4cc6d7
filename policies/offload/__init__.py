"""Offloading policies: whether a request runs on its device or on an edge server.

Every module in this folder is imported, so a new policy is one new file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
