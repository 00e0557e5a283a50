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

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import torch
from torch import Tensor

from handgrad.errors import InputError, NotSupportedError
from handgrad.kernels.workspace import Workspace, fill_outside


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
        raise InputError(f"toom_cook: F({m}, {r}) needs {n - 1} distinct points, got {points}")

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
    layer owns the work tensors (its Workspace); this object holds only the matrices.
    """

    def __init__(
        self, m: int = 4, points: Sequence[Fraction | int] = (0, 1, -1, 2, Fraction(-1, 2))
    ):
        if 1 not in points:
            raise InputError("Winograd3x3: the points must include 1, where the bias enters")
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
        ws: Workspace,
        chunk_bytes: int = 4 << 20,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """y = conv2d(x, weight, bias); also returns (V, U), what backward needs."""
        N, C, H, W = x.shape
        O = weight.shape[0]
        Ho, Wo, th, tw = self.sizes(x.shape, pads)
        t, m = self.t, self.m
        chunks = self._chunks(N, C, O, th * tw, x.element_size(), chunk_bytes)
        U = (self.matrices(x)[1] @ weight.reshape(O * C, 9).T).view(t * t, O, C)  # G g Gᵀ
        V = ws.take("wg_v", (t * t * C * N * th * tw,), x)  # each chunk's V, one after another
        nb = chunks[0][1]  # images in a full chunk; the work buffers fit one
        (top, _), (left, _) = pads
        xp = ws.take("wg_x", (nb, C, m * th + 2, m * tw + 2), x)
        fill_outside(xp, (top, left), (H, W), 0.0)  # the padding; each chunk fills the inside
        work = self._buffers(ws, x, C, O, nb * th * tw)
        y = x.new_empty(N, O, Ho, Wo)
        for n0, n1 in chunks:
            xp[: n1 - n0, :, top : top + H, left : left + W] = x[n0:n1]
            V_chunk = self._V(V, C, th * tw, n0, n1)
            self._forward_chunk(xp[: n1 - n0], U, bias, V_chunk, y[n0:n1], work)
        ws.give_back("wg_x", xp)
        self._give_back(ws, work)
        return y, (V, U)

    def _forward_chunk(
        self, xp: Tensor, U: Tensor, bias: Tensor | None, V: Tensor, y: Tensor, work: list[Tensor]
    ) -> None:
        """y = conv2d of one chunk's padded input xp; its Bᵀ d B goes to V."""
        m, t = self.m, self.t
        n, C = xp.shape[:2]
        O, Ho, Wo = y.shape[1:]
        th, tw = (xp.shape[2] - 2) // m, (xp.shape[3] - 2) // m
        P = n * th * tw
        B2, _, A2 = self.matrices(xp)
        a, b = work
        d = a[: C * P * t * t].view(C, n, th, tw, t, t)
        d.copy_(xp.unfold(2, t, m).unfold(3, t, m).transpose(0, 1))  # every tile, overlapping
        torch.mm(B2, d.view(C * P, t * t).T, out=V.view(t * t, C * P))  # V = Bᵀ d B
        M = b[: O * P * t * t].view(t * t, O, P)
        torch.bmm(U, V, out=M)  # M[ξ] = U[ξ] V[ξ]: the sum over input channels
        if bias is not None:
            M[self.one] += bias.view(O, 1)
        Y = a[: O * P * m * m].view(O, n, th, tw, m, m)
        torch.mm(M.view(t * t, O * P).T, A2.T, out=Y.view(O * P, m * m))  # Y = Aᵀ M A
        blocks = Y.permute(1, 0, 2, 4, 3, 5)  # (n, O, th, m, tw, m)
        if (Ho, Wo) == (m * th, m * tw):
            _copy_rows(y.view(n, O, th, m, tw, m), blocks)
        else:  # the last blocks overhang the output: assemble whole, then crop
            whole = b[: n * O * th * m * tw * m].view(n, O, th, m, tw, m)  # M is done with
            _copy_rows(whole, blocks)
            y.copy_(whole.view(n, O, m * th, m * tw)[:, :, :Ho, :Wo])

    def backward(
        self,
        dy: Tensor,
        saved: tuple[Tensor, Tensor],
        x_shape: Sequence[int],
        pads: Sequence[tuple[int, int]],
        ws: Workspace,
        need_dx: bool = True,
        chunk_bytes: int = 4 << 20,
    ) -> tuple[Tensor | None, Tensor, Tensor]:
        """(dL/dx or None, dL/dW, dL/db) from dy (N, O, H_out, W_out)."""
        m, t = self.m, self.t
        V, U = saved
        N, C, H, W = x_shape
        O = U.shape[1]
        Ho, Wo, th, tw = self.sizes(x_shape, pads)
        chunks = self._chunks(N, C, O, th * tw, dy.element_size(), chunk_bytes)
        whole_blocks = (Ho, Wo) == (m * th, m * tw)
        if not whole_blocks:  # dy is zero-padded to whole blocks
            dyp = ws.take("wg_dy", (chunks[0][1], O, m * th, m * tw), dy)
            fill_outside(dyp, (0, 0), (Ho, Wo), 0.0)
        dU = dy.new_zeros(t * t, O, C)
        db = dy.new_zeros(O)
        dxp = dy.new_empty(N, C, th + 1, m, tw + 1, m) if need_dx else None
        work = self._buffers(ws, dy, C, O, chunks[0][1] * th * tw)
        for n0, n1 in chunks:
            if whole_blocks:
                dyb = dy[n0:n1].reshape(n1 - n0, O, th, m, tw, m)
            else:
                dyp[: n1 - n0, :, :Ho, :Wo] = dy[n0:n1]
                dyb = dyp[: n1 - n0].view(n1 - n0, O, th, m, tw, m)
            dx_chunk = None if dxp is None else dxp[n0:n1]
            V_chunk = self._V(V, C, th * tw, n0, n1)
            self._backward_chunk(dyb, U, V_chunk, dU, db, dx_chunk, work)
        dW = (dU.view(t * t, O * C).T @ self.matrices(dy)[1]).view(O, C, 3, 3)  # Gᵀ dU G
        ws.give_back("wg_v", V)
        self._give_back(ws, work)
        if not whole_blocks:
            ws.give_back("wg_dy", dyp)
        if dxp is None:
            return None, dW, db
        (top, _), (left, _) = pads
        dx = dxp.view(N, C, m * (th + 1), m * (tw + 1))[:, :, top : top + H, left : left + W]
        return dx, dW, db

    def _backward_chunk(
        self,
        dyb: Tensor,
        U: Tensor,
        V: Tensor,
        dU: Tensor,
        db: Tensor,
        dxp: Tensor | None,
        work: list[Tensor],
    ) -> None:
        """Add this chunk's dL/dU into dU and dL/db into db; write its dL/dx blocks to dxp.
        dyb is dy as (n, O, th, m, tw, m) blocks."""
        m, t = self.m, self.t
        n, O, th, _, tw, _ = dyb.shape
        C = U.shape[2]
        P = n * th * tw
        B2, _, A2 = self.matrices(dyb)
        a, b = work
        d4 = a[: O * P * m * m].view(O, n, th, tw, m, m)
        _copy_rows(d4, dyb.permute(1, 0, 2, 4, 3, 5))
        dM = b[: O * P * t * t].view(t * t, O, P)
        torch.mm(A2.T, d4.view(O * P, m * m).T, out=dM.view(t * t, O * P))  # dM = A dY Aᵀ
        db += dM[self.one].sum(1)  # = Σ dy over images and positions
        dU.baddbmm_(dM, V.transpose(1, 2))  # dU[ξ] += dM[ξ] V[ξ]ᵀ
        if dxp is None:
            return
        dV = a[: C * P * t * t].view(t * t, C, P)  # dY's tiles are done with
        torch.bmm(U.transpose(1, 2), dM, out=dV)  # dV[ξ] = U[ξ]ᵀ dM[ξ]
        dd = b[: C * P * t * t].view(C, n, th, tw, t, t)  # dM is done with
        torch.mm(dV.view(t * t, C * P).T, B2, out=dd.view(C * P, t * t))  # dd = B dV Bᵀ
        # Add each t×t tile back at (m·i, m·j): its first m rows fall in block row i, the
        # other t - m in block row i + 1; likewise the columns.
        e = t - m
        tiles = dd.permute(1, 0, 2, 4, 3, 5)  # (n, C, th, t, tw, t)
        dxp[:, :, th].zero_()
        dxp[:, :, :th, :, tw].zero_()
        dxp[:, :, :th, :, :tw].copy_(tiles[:, :, :, :m, :, :m])
        dxp[:, :, 1:, :e, :tw] += tiles[:, :, :, m:, :, :m]
        dxp[:, :, :th, :, 1:, :e] += tiles[:, :, :, :m, :, m:]
        dxp[:, :, 1:, :e, 1:, :e] += tiles[:, :, :, m:, :, m:]

    def _chunks(
        self, N: int, C: int, O: int, tiles: int, itemsize: int, chunk_bytes: int
    ) -> list[tuple[int, int]]:
        """Image ranges [n0, n1) of the batch, each with work tensors of at most about
        ``chunk_bytes``: a chunk's stages then pass their data through the cache, not memory."""
        per_image = self.t**2 * max(C, O) * tiles * itemsize
        nb = max(1, min(N, chunk_bytes // per_image))
        return [(n0, min(N, n0 + nb)) for n0 in range(0, max(N, 1), nb)]  # N = 0: one, empty

    def _V(self, V: Tensor, C: int, tiles: int, n0: int, n1: int) -> Tensor:
        """Images n0..n1's (t², C, P) slice of the saved transformed input."""
        t2 = self.t**2
        return V[t2 * C * n0 * tiles : t2 * C * n1 * tiles].view(t2, C, (n1 - n0) * tiles)

    def _buffers(self, ws: Workspace, like: Tensor, C: int, O: int, P: int) -> list[Tensor]:
        """Two flat work buffers for P tiles that the stages take turns in: (a) input tiles,
        then output blocks, then dY's tiles, then dV; (b) M, then dM, then dd."""
        sizes = (max(C * self.t**2, O * self.m**2) * P, max(C, O) * self.t**2 * P)
        return [ws.take(f"wg_{n}", (s,), like) for n, s in zip("ab", sizes)]

    def _give_back(self, ws: Workspace, work: list[Tensor]) -> None:
        for n, buf in zip("ab", work):
            ws.give_back(f"wg_{n}", buf)


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


@dataclass(frozen=True)
class Winograd:
    """The Winograd kernel for a 3×3, stride-1 Conv2d; ``algorithm="winograd"`` is
    ``Winograd()``. The batch goes through in chunks whose largest work tensor is about
    `chunk_bytes`, so each chunk's stages pass their data through the cache."""

    name: ClassVar[str] = "winograd"
    chunk_bytes: int = 4 << 20

    def forward(
        self,
        x: Tensor,
        W: Tensor,
        b: Tensor | None,
        stride: Sequence[int],
        padding: Sequence[tuple[int, int]],
        dilation: Sequence[int],
        ws: Workspace,
        groups: int = 1,
    ) -> tuple[Tensor, tuple]:
        if groups != 1:
            raise NotSupportedError("Winograd", f"groups={groups}", "only groups=1")
        y, saved = F4x4_3x3.forward(x, W, b, padding, ws, self.chunk_bytes)
        return y, (saved, x.shape, padding, b is not None)

    def release(self, cache: tuple, ws: Workspace) -> None:
        """Give back the transformed input of a cache that no backward will use."""
        ws.give_back("wg_v", cache[0][0])

    def backward(
        self, dy: Tensor, cache: tuple, ws: Workspace, need_dx: bool = True
    ) -> tuple[Tensor | None, Tensor, Tensor | None]:
        saved, x_shape, padding, has_bias = cache
        dx, dW, db = F4x4_3x3.backward(dy, saved, x_shape, padding, ws, need_dx, self.chunk_bytes)
        return dx, dW, db if has_bias else None
