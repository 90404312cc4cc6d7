"""Early-exit policies: where each input leaves a multi-exit network.

Every module in this folder is imported, so a new policy is one new file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
