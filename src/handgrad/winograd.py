"""Winograd's minimal filtering for 3×3 convolutions with stride 1: F(4×4, 3×3).

A 3×3 convolution makes each 4×4 block of output from a 6×6 tile of input (tiles overlap by
two). Winograd (1980), as Lavin & Gray (2016) use it for CNNs: with fixed matrices Bᵀ (6×6),
G (6×3) and Aᵀ (4×6), one tile d and one filter g give

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

so the sum over input channels happens in the transformed domain, as one matrix product per
point ξ of the 6×6 tile (P tiles, C in and O out channels):

    U[ξ] = (G g Gᵀ)[ξ]  (O, C),   V[ξ] = (Bᵀ d B)[ξ]  (C, P),   M[ξ] = U[ξ] V[ξ]  (O, P)

36 multiplications per channel pair make 16 outputs: 2.25 per output instead of im2col's 9.
Backward is the chain rule through the same linear maps, Y = Aᵀ M A being one of them:

    dM = A dY Aᵀ,  dU[ξ] = dM[ξ] V[ξ]ᵀ,  dg = Gᵀ dU G,  dV[ξ] = U[ξ]ᵀ dM[ξ],  dd = B dV Bᵀ

and each tile's dd is added back where the tile came from. Every 2-D transform X ↦ Lᵀ X L is
one matrix product with the Kronecker matrix Lᵀ⊗Lᵀ over the flattened tiles.
Math and accuracy: docs/math.md#winograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
from torch import Tensor

Scratch = Callable[..., Tensor]  # _Windows._scratch(name, shape, like, zero=False)


def toom_cook(m: int, r: int, points: Sequence[Fraction | int]) -> tuple[Tensor, Tensor, Tensor]:
    """Aᵀ (m×n), G (n×r), Bᵀ (n×n) of the 1-D F(m, r), n = m + r - 1, from n - 1 distinct
    finite points and the point at infinity (Toom-Cook; exact in fractions, then float64).

    With M(x) = Π_j (x - p_j): Aᵀ[i, j] = p_j^i, G[j, k] = p_j^k / M_j(p_j), and row j of Bᵀ
    holds the coefficients of M_j(x) = M(x) / (x - p_j); the last row and column are infinity's.
    Then y_i = Σ_k g_k d_{i+k} equals Aᵀ[(G g) ⊙ (Bᵀ d)] for every d and g.
    """
    n = m + r - 1
    p = [Fraction(v) for v in points]
    if len(p) != n - 1 or len(set(p)) != len(p):
        raise ValueError(f"toom_cook: F({m}, {r}) needs {n - 1} distinct points, got {points}")

    def poly_without(skip: int) -> list[Fraction]:  # coefficients of Π_{j != skip} (x - p_j)
        c = [Fraction(1)]
        for j, pj in enumerate(p):
            if j != skip:
                c = [a - pj * b for a, b in zip([Fraction(0), *c], [*c, Fraction(0)])]
        return c + [Fraction(0)] * (n - len(c))

    f = [poly_without(j) for j in range(n - 1)]
    scale = [sum(c * pj**i for i, c in enumerate(f[j])) for j, pj in enumerate(p)]  # M_j(p_j)
    AT = [[pj**i for pj in p] + [Fraction(i == m - 1)] for i in range(m)]
    G = [[pj**k / s for k in range(r)] for pj, s in zip(p, scale)]
    G.append([Fraction(k == r - 1) for k in range(r)])
    BT = [*f, poly_without(-1)]

    def tensor(rows: list[list[Fraction]]) -> Tensor:
        return torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)

    return tensor(AT), tensor(G), tensor(BT)


class Winograd3x3:
    """F(m×m, 3×3) for a Conv2d with a 3×3 kernel, stride 1 and dilation 1 (any padding).

    The points 0, 1, -1, 2, -1/2 (and infinity) are chosen for float32 accuracy: measured
    here they give about half the error of Lavin's 0, ±1, ±2 (docs/math.md#winograd). The
    layer owns the work buffers (``scratch``); this object holds only the matrices.
    """

    def __init__(
        self, m: int = 4, points: Sequence[Fraction | int] = (0, 1, -1, 2, Fraction(-1, 2))
    ):
        if 1 not in points:
            raise ValueError("Winograd3x3: the points must include 1, where the bias enters")
        self.m, self.t = m, m + 2
        AT, G, BT = toom_cook(m, 3, points)
        self.kron64 = tuple(torch.kron(L, L) for L in (BT, G, AT))  # Bᵀ⊗Bᵀ, G⊗G, Aᵀ⊗Aᵀ
        # Aᵀ's column for the point 1 is all ones, so b added at (1, 1) of every M tile is
        # added to every output; dL/db is read back from the same place.
        one = list(points).index(1)
        self.one = one * self.t + one
        self._cast: dict[tuple[torch.dtype, torch.device], tuple[Tensor, ...]] = {}

    def matrices(self, like: Tensor) -> tuple[Tensor, ...]:
        key = (like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = tuple(k.to(like) for k in self.kron64)
        return self._cast[key]

    def sizes(self, x_shape: Sequence[int], pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
        """(H_out, W_out, tile rows, tile columns) of a (N, C, H, W) input."""
        Ho, Wo = (s + a + b - 2 for s, (a, b) in zip(x_shape[2:], pads))
        return Ho, Wo, -(-Ho // self.m), -(-Wo // self.m)

    def forward(
        self,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        pads: Sequence[tuple[int, int]],
        scratch: Scratch,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """y = conv2d(x, weight, bias); also returns (V, U), what backward needs."""
        m, t = self.m, self.t
        N, C, H, W = x.shape
        O = weight.shape[0]
        Ho, Wo, th, tw = self.sizes(x.shape, pads)
        P = N * th * tw
        B2, G2, A2 = self.matrices(x)
        a, b = self._buffers(scratch, x, C, O, P)
        (top, _), (left, _) = pads
        xp = scratch("wg_x", (N, C, m * th + 2, m * tw + 2), x, zero=True)  # border stays 0
        xp[:, :, top : top + H, left : left + W] = x
        d = a[: C * P * t * t].view(C, N, th, tw, t, t)
        d.copy_(xp.unfold(2, t, m).unfold(3, t, m).transpose(0, 1))  # every tile, overlapping
        V = scratch("wg_v", (t * t, C, P), x)
        torch.mm(B2, d.view(C * P, t * t).T, out=V.view(t * t, C * P))  # V = Bᵀ d B
        U = (G2 @ weight.reshape(O * C, 9).T).view(t * t, O, C)  # U = G g Gᵀ
        M = b[: O * P * t * t].view(t * t, O, P)
        torch.bmm(U, V, out=M)  # M[ξ] = U[ξ] V[ξ]: the sum over input channels
        if bias is not None:
            M[self.one] += bias.view(O, 1)
        Y = a[: O * P * m * m].view(O, N, th, tw, m, m)
        torch.mm(M.view(t * t, O * P).T, A2.T, out=Y.view(O * P, m * m))  # Y = Aᵀ M A
        blocks = Y.permute(1, 0, 2, 4, 3, 5)  # (N, O, th, m, tw, m)
        y = x.new_empty(N, O, Ho, Wo)
        if (Ho, Wo) == (m * th, m * tw):
            _copy_rows(y.view(N, O, th, m, tw, m), blocks)
        else:  # the last blocks overhang the output: assemble whole, then crop
            whole = b[: N * O * th * m * tw * m].view(N, O, th, m, tw, m)  # M is done with
            _copy_rows(whole, blocks)
            y.copy_(whole.view(N, O, m * th, m * tw)[:, :, :Ho, :Wo])
        return y, (V, U)

    def backward(
        self,
        dy: Tensor,
        saved: tuple[Tensor, Tensor],
        x_shape: Sequence[int],
        pads: Sequence[tuple[int, int]],
        scratch: Scratch,
        need_dx: bool = True,
    ) -> tuple[Tensor | None, Tensor, Tensor]:
        """(dL/dx or None, dL/dW, dL/db) from dy (N, O, H_out, W_out)."""
        m, t = self.m, self.t
        V, U = saved
        N, C, H, W = x_shape
        O = U.shape[1]
        Ho, Wo, th, tw = self.sizes(x_shape, pads)
        P = N * th * tw
        B2, G2, A2 = self.matrices(dy)
        a, b = self._buffers(scratch, dy, C, O, P)
        if (Ho, Wo) == (m * th, m * tw):
            dyb = dy.reshape(N, O, th, m, tw, m)
        else:  # zero-pad dy to whole blocks
            dyp = scratch("wg_dy", (N, O, m * th, m * tw), dy, zero=True)
            dyp[:, :, :Ho, :Wo] = dy
            dyb = dyp.view(N, O, th, m, tw, m)
        d4 = a[: O * P * m * m].view(O, N, th, tw, m, m)
        _copy_rows(d4, dyb.permute(1, 0, 2, 4, 3, 5))
        dM = b[: O * P * t * t].view(t * t, O, P)
        torch.mm(A2.T, d4.view(O * P, m * m).T, out=dM.view(t * t, O * P))  # dM = A dY Aᵀ
        db = dM[self.one].sum(1)  # = Σ dy over images and positions
        dU = torch.bmm(dM, V.transpose(1, 2))  # dU[ξ] = dM[ξ] V[ξ]ᵀ
        dW = (dU.view(t * t, O * C).T @ G2).view(O, C, 3, 3)  # dg = Gᵀ dU G
        if not need_dx:
            return None, dW, db
        dV = a[: C * P * t * t].view(t * t, C, P)  # dY's tiles are done with
        torch.bmm(U.transpose(1, 2), dM, out=dV)  # dV[ξ] = U[ξ]ᵀ dM[ξ]
        dd = b[: C * P * t * t].view(C, N, th, tw, t, t)  # dM is done with
        torch.mm(dV.view(t * t, C * P).T, B2, out=dd.view(C * P, t * t))  # dd = B dV Bᵀ
        # Add each t×t tile back at (m·i, m·j): its first m rows fall in block row i, the
        # other t - m in block row i + 1; likewise the columns.
        e = t - m
        tiles = dd.permute(1, 0, 2, 4, 3, 5)  # (N, C, th, t, tw, t)
        dxp = dy.new_empty(N, C, th + 1, m, tw + 1, m)
        dxp[:, :, th].zero_()
        dxp[:, :, :th, :, tw].zero_()
        dxp[:, :, :th, :, :tw].copy_(tiles[:, :, :, :m, :, :m])
        dxp[:, :, 1:, :e, :tw] += tiles[:, :, :, m:, :, :m]
        dxp[:, :, :th, :, 1:, :e] += tiles[:, :, :, :m, :, m:]
        dxp[:, :, 1:, :e, 1:, :e] += tiles[:, :, :, m:, :, m:]
        (top, _), (left, _) = pads
        dx = dxp.view(N, C, m * (th + 1), m * (tw + 1))[:, :, top : top + H, left : left + W]
        return dx, dW, db

    def _buffers(self, scratch: Scratch, like: Tensor, C: int, O: int, P: int) -> list[Tensor]:
        """Two flat work buffers that the stages take turns in: (a) input tiles, then output
        blocks, then dY's tiles, then dV; (b) M, then dM, then dd."""
        sizes = (max(C * self.t**2, O * self.m**2) * P, max(C, O) * self.t**2 * P)
        return [scratch(f"wg_{n}", (s,), like) for n, s in zip("ab", sizes)]


def _copy_rows(dst: Tensor, src: Tensor) -> None:
    """dst.copy_(src) for a permuted copy whose last dimension is a row of 4 outputs: moved
    as 16-byte complex128 elements where both layouts allow it (bits only, no arithmetic),
    which is several times faster than moving the floats one by one."""
    try:
        dst, src = dst.view(torch.complex128), src.view(torch.complex128)
    except RuntimeError:  # a row that is not 16 bytes, or not 16-byte aligned
        pass
    dst.copy_(src)


F4x4_3x3 = Winograd3x3()
