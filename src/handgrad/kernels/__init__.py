"""Opt-in speed: tuned kernels that compute what handgrad.ops computes, faster.

The path a reader follows to learn a layer is its reference op (Conv2d: handgrad.ops.conv).
These kernels make other trade-offs (reused work tensors, in-place steps, other layouts,
chunking, another algorithm), each stated where it is made, and tests/test_kernels.py holds
each equal to its reference. A layer picks one with its ``algorithm`` argument; "auto" picks
the fastest that is exact enough.

- Conv1d/2d/3d: Im2col (tuned im2col, col2im_add), Winograd (F(4×4, 3×3));
- Linear: linear_backward_into (dL/dW added into .grad by the GEMM);
- LayerNorm: layer_norm_backward (in one buffer);
- MultiheadAttention: attention_forward, attention_backward (elementwise steps in place);
- GELU: gelu_forward, gelu_backward (one buffer per pass).
"""

from handgrad.kernels import activation, attention, normalization
from handgrad.kernels.im2col import Im2col, col2im_add
from handgrad.kernels.linear import linear_backward_into
from handgrad.kernels.winograd import F4x4_3x3, Winograd, Winograd3x3, toom_cook
from handgrad.kernels.workspace import Workspace, fill_outside

__all__ = [
    "Im2col",
    "col2im_add",
    "Winograd",
    "Winograd3x3",
    "F4x4_3x3",
    "toom_cook",
    "Workspace",
    "fill_outside",
    "linear_backward_into",
    "activation",
    "attention",
    "normalization",
]
