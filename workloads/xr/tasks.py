"""Names of the eleven XRBench task models, importable without torch (for validation).

:mod:`workloads.xr.models` builds them; a test checks that the two lists agree.
"""

TASKS: tuple[str, ...] = (
    "eye_segmentation",
    "gaze_estimation",
    "hand_tracking",
    "depth_refinement",
    "depth_estimation",
    "keyword_detection",
    "speech_recognition",
    "semantic_segmentation",
    "object_detection",
    "plane_detection",
    "action_segmentation",
)
