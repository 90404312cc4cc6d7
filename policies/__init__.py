"""The decisions: one small class per policy, one folder per family, found by name.

Importing this package (a ``testbed.plugins`` entry point) tells the registry which
folder holds each family; a folder's policies are imported when its family is first
needed.
"""

from sim.registry import provide

for _family, _folder in {
    "acquisition": "acquisition",
    "aggregation": "federated",
    "dvfs": "dvfs",
    "exit": "exit",
    "offload": "offload",
    "scheduling": "scheduling",
    "selection": "federated",
    "user_choice": "user_choice",
}.items():
    provide(_family, f"policies.{_folder}")
