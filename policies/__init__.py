"""The decisions: one small class per policy, one folder per family, found by name.

Importing this package registers every built-in policy (it is a ``testbed.plugins``
entry point).
"""

from policies import acquisition, dvfs, exit, federated, offload, scheduling, user_choice  # noqa: F401
