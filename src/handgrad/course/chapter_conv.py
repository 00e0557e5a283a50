"""Chapter 6 of the course, convolution by im2col: the reference (handgrad's ops/conv.py),
the hidden inputs and the catalogued mistakes of tasks 6.1 (im2col) and 6.2 (Conv2d).

    cols[(n, i, j), (c, a, b)] = xp[n, c, s·i + a, s·j + b]       (N·H'·W', C·K·K)
    y = cols Wᵀ + b,   dL/dW = dyᵀ cols,   dL/db = Σ dy,   dL/dx = col2im(dy W)

xp is x padded with p zeros on each side, H' = (H + 2p − K) // s + 1. col2im adds each
window's gradient back where the window read it (windows that overlap add up).
"""

from __future__ import annotations

from typing import Any

import torch

from handgrad.course.hidden import cases, gen, int_, randn
from handgrad.ops import conv


def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    return conv.pad(x, [(p, p), (p, p)])


class Im2col61:
    """6.1: (N, C, H, W) -> (N·H'·W', C·K·K), a row per window, in the order (n, i, j); a
    column per (c, a, b)."""

    def __init__(self, kernel_size: int, stride: int = 1, padding: int = 0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        win = conv.windows(_pad(x, self.padding), (k, k), (s, s), (1, 1))  # (N, C, H', W', K, K)
        return win.permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1] * k * k)


class Conv2d62:
    """6.2: y = cols Wᵀ + b as (N, O, H', W'); backward(dy) -> (dL/dx, dL/dW, dL/db)."""

    def __init__(
        self, weights: torch.Tensor, bias: torch.Tensor, stride: int = 1, padding: int = 0
    ):
        self.weights, self.bias, self.stride, self.padding = weights, bias, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, p = self.stride, self.padding
        y, self.cache = conv.conv_forward(
            x, self.weights, self.bias, (s, s), [(p, p), (p, p)], (1, 1)
        )
        return y

    def backward(self, dy: torch.Tensor) -> tuple[Any, ...]:
        dx, dW, db = conv.conv_backward(dy, self.cache)
        return dx, dW, db


CLASSES: dict[str, dict[str, Any]] = {
    "6.1": {"Im2col": Im2col61},
    "6.2": {"Im2col": Im2col61, "Conv2d": Conv2d62},
}


# ---- the hidden inputs ------------------------------------------------------------------------
def probe_6_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "6.1")
    n, c = int_(g, 2, 3), int_(g, 2, 3)
    x = randn(g, n, c, int_(g, 4, 7), int_(g, 4, 7))
    return cases(
        {
            "kernel_3": lambda: ns.Im2col(3).forward(x),
            "stride_2_padding_1": lambda: ns.Im2col(3, stride=2, padding=1).forward(x),
            "kernel_2_padding_2": lambda: ns.Im2col(2, padding=2).forward(x),
            "kernel_1x1": lambda: ns.Im2col(1).forward(x),
            "batch_of_one": lambda: ns.Im2col(3, padding=1).forward(x[:1]),
        }
    )


def _conv(ns: Any, W: Any, b: Any, x: Any, s: int, p: int, g: torch.Generator) -> dict[str, Any]:
    layer = ns.Conv2d(W, b, stride=s, padding=p)
    y = layer.forward(x)
    dy = randn(g, *y.shape)
    return {"forward": y, "backward": layer.backward(dy)}


def probe_6_2(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "6.2")
    n, c, o = int_(g, 2, 3), int_(g, 2, 3), int_(g, 2, 4)
    x = randn(g, n, c, int_(g, 5, 7), int_(g, 5, 7))
    W3, W1, b = randn(g, o, c, 3, 3), randn(g, o, c, 1, 1), randn(g, o)
    return cases(
        {
            "kernel_3_padding_1": lambda: _conv(ns, W3, b, x, 1, 1, gen(seed, "6.2a")),
            "stride_2": lambda: _conv(ns, W3, b, x, 2, 0, gen(seed, "6.2b")),
            "kernel_1x1": lambda: _conv(ns, W1, b, x, 1, 0, gen(seed, "6.2c")),
            "batch_of_one": lambda: _conv(ns, W3, b, x[:1], 1, 1, gen(seed, "6.2d")),
        }
    )


PROBES = {"6.1": probe_6_1, "6.2": probe_6_2}


# ---- the catalogued mistakes (each replaces every method it relies on: a planted mistake
# keeps the rest of the student's class) ------------------------------------------------------
def _windows(s: Any, x: torch.Tensor, p: int) -> torch.Tensor:
    k, st = s.kernel_size, s.stride
    return conv.windows(_pad(x, p), (k, k), (st, st), (1, 1))  # (N, C, H', W', K, K)


def _columns_kkc(s: Any, x: torch.Tensor) -> torch.Tensor:
    """Each window's columns in the order (a, b, c): the kernel offset first, not the channel."""
    win = _windows(s, x, s.padding)
    return win.permute(0, 2, 3, 4, 5, 1).reshape(-1, x.shape[1] * s.kernel_size**2)


def _rows_position_first(s: Any, x: torch.Tensor) -> torch.Tensor:
    """The rows in the order (i, j, n): the windows of all images at a position together."""
    win = _windows(s, x, s.padding)
    return win.permute(2, 3, 0, 1, 4, 5).reshape(-1, x.shape[1] * s.kernel_size**2)


def _no_padding(s: Any, x: torch.Tensor) -> torch.Tensor:
    win = _windows(s, x, 0)
    return win.permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1] * s.kernel_size**2)


def _flipped_forward(s: Any, x: torch.Tensor) -> torch.Tensor:
    """A true convolution: the kernel flipped (torch's Conv2d is a cross-correlation)."""
    st, p = s.stride, s.padding
    W = s.weights.flip(-1, -2)
    y, s.cache = conv.conv_forward(x, W, s.bias, (st, st), [(p, p), (p, p)], (1, 1))
    return y


def _flipped_backward(s: Any, dy: torch.Tensor) -> tuple[Any, ...]:
    dx, dW, db = conv.conv_backward(dy, s.cache)
    return dx, dW.flip(-1, -2), db


def _col2im_overwrites(s: Any, dy: torch.Tensor) -> tuple[Any, ...]:
    """dL/dx with each window's gradient written over the last one's, not added to it."""
    dx, dW, db = conv.conv_backward(dy, s.cache)
    cols, W, _, padded_shape, stride, padding, _ = s.cache
    N, O, Ho, Wo = dy.shape
    C, k, st = W.shape[1], W.shape[-1], stride[0]
    dcols = dy.movedim(1, -1).reshape(-1, O) @ W.reshape(O, -1)  # (N·H'·W', C·K·K)
    dwin = dcols.view(N, Ho, Wo, C, k, k)
    dxp = dy.new_zeros(padded_shape)
    for i in range(Ho):
        for j in range(Wo):
            dxp[:, :, i * st : i * st + k, j * st : j * st + k] = dwin[:, i, j]
    return conv.crop(dxp, padding), dW, db


def _db_mean(s: Any, dy: torch.Tensor) -> tuple[Any, ...]:
    dx, dW, _ = conv.conv_backward(dy, s.cache)
    return dx, dW, dy.mean(dim=(0, 2, 3))


MISTAKES: tuple[tuple[Any, ...], ...] = (
    (
        "im2col-column-order",
        "6.1",
        "Im2col",
        {"forward": _columns_kkc},
        "столбцы окна в порядке (смещение ядра, канал): нужен (канал, строка ядра, столбец ядра), как W.reshape(O, C·K·K)",
        "a window's columns in the order (kernel offset, channel): (channel, kernel row, kernel column) is wanted, as W.reshape(O, C·K·K)",
    ),
    (
        "im2col-row-order",
        "6.1",
        "Im2col",
        {"forward": _rows_position_first},
        "строки в порядке (позиция, изображение): нужен (изображение, строка, столбец выхода)",
        "the rows in the order (position, image): (image, output row, output column) is wanted",
    ),
    (
        "im2col-no-padding",
        "6.1",
        "Im2col",
        {"forward": _no_padding},
        "padding не применён: вход не дополнен нулями по краям",
        "padding is ignored: the input is not padded with zeros at its edges",
    ),
    (
        "conv-kernel-flipped",
        "6.2",
        "Conv2d",
        {"forward": _flipped_forward, "backward": _flipped_backward},
        "ядро перевёрнуто: свёртка в torch — взаимная корреляция, W[o, c, a, b] умножает xp[s·i + a, s·j + b]",
        "the kernel is flipped: torch's convolution is a cross-correlation, W[o, c, a, b] multiplies xp[s·i + a, s·j + b]",
    ),
    (
        "col2im-overwrites",
        "6.2",
        "Conv2d",
        {"forward": Conv2d62.forward, "backward": _col2im_overwrites},
        "col2im записывает градиент окна поверх, а не прибавляет: где окна перекрываются, градиенты складываются",
        "col2im writes a window's gradient over, not adds it: where windows overlap their gradients add up",
    ),
    (
        "conv-db-mean",
        "6.2",
        "Conv2d",
        {"forward": Conv2d62.forward, "backward": _db_mean},
        "dL/db — среднее dy, а нужна сумма по изображениям и позициям",
        "dL/db is the mean of dy, the sum over images and positions is wanted",
    ),
)
