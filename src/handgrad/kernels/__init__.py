"""Opt-in speed: tuned kernels that compute what handgrad.ops computes, faster.

The path a reader follows to learn a layer is its reference op (Conv2d: handgrad.ops.conv).
These kernels make other trade-offs (reused work tensors, other layouts, chunking, another
algorithm), each stated where it is made, and pass the same tests as the reference. A layer
picks one with its ``algorithm`` argument; "auto" picks the fastest that is exact enough.
"""

from handgrad.kernels.im2col import Im2col
from handgrad.kernels.winograd import F4x4_3x3, Winograd, Winograd3x3, toom_cook
from handgrad.kernels.workspace import Workspace, fill_outside

__all__ = [
    "Im2col",
    "Winograd",
    "Winograd3x3",
    "F4x4_3x3",
    "toom_cook",
    "Workspace",
    "fill_outside",
]
