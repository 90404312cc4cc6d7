"""What runs: real PyTorch models, demand streams, and the scenario kinds.

Importing this package registers its scenario kinds (it is a ``testbed.plugins``
entry point).
"""

from workloads import edge, federated, market, xr  # noqa: F401
