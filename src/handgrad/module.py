"""Module base class and Sequential: the forward/backward protocol every layer follows.

A module's ``forward(x)`` keeps what ``backward`` needs in plainly named attributes;
``backward(dy)`` adds parameter gradients into ``.grad`` (``+=``, as PyTorch does) and
returns ``dL/dx``. Parameters are plain tensors listed explicitly by each layer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def accumulate_grad(param: Tensor, grad: Tensor) -> None:
    """param.grad += grad, creating .grad on first use (PyTorch's accumulation rule).

    ``grad`` must be a tensor the caller just computed (not a view of an input): on first use
    it becomes ``.grad`` itself, so later accumulation writes into it.
    """
    if param.grad is None:
        param.grad = grad
    else:
        param.grad += grad


def fill_outside(buf: Tensor, starts: Sequence[int], lengths: Sequence[int], value: float) -> None:
    """Set buf to value outside the box starts..starts+lengths of its last len(starts) dims:
    the padding of a reused work buffer, where its last use may have left other data."""
    lead = buf.dim() - len(starts)
    for i, (a, n) in enumerate(zip(starts, lengths)):
        before: tuple[Any, ...] = (slice(None),) * (lead + i)
        buf[(*before, slice(0, a))] = value
        buf[(*before, slice(a + n, None))] = value


def zero_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Clear each tensor's .grad: to None (PyTorch's default since 2.0), or to zeros in place."""
    for p in params:
        if set_to_none:
            p.grad = None
        elif p.grad is not None:
            p.grad.zero_()


class Module:
    """Base class: ``__call__`` runs ``forward``; ``backward(dy)`` returns ``dL/dx``."""

    training: bool = True

    # ---- the protocol -------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, dy: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def backward_params(self, dy: Tensor) -> None:
        """Accumulate the parameter gradients only, for a caller that has no use for dL/dx
        (the first layer of a model trained on data, as torch skips inputs without
        requires_grad). Layers whose dL/dx costs a matrix product override this to skip it."""
        self.backward(dy)

    # ---- what a layer declares ----------------------------------------------------------
    def _parameter_names(self) -> tuple[str, ...]:
        """Attribute names of this module's own trainable tensors (None entries are skipped)."""
        return ()

    def _buffer_names(self) -> tuple[str, ...]:
        """Attribute names of saved, non-trainable state (running statistics)."""
        return ()

    def children(self) -> list[tuple[str, Module]]:
        """(name, module) of direct sub-modules; containers override this."""
        return []

    # ---- derived from the declarations ---------------------------------------------------
    def named_parameters(self, prefix: str = "") -> list[tuple[str, Tensor]]:
        """(dotted name, tensor) for every parameter, in the order torch.nn would list them."""
        own = [(prefix + n, getattr(self, n)) for n in self._parameter_names()]
        named = [(n, t) for n, t in own if t is not None]
        for child_name, child in self.children():
            named += child.named_parameters(f"{prefix}{child_name}.")
        return named

    def parameters(self) -> list[Tensor]:
        """Every trainable tensor of this module and its children."""
        return [t for _, t in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> list[tuple[str, Tensor]]:
        own = [(prefix + n, getattr(self, n)) for n in self._buffer_names()]
        named = [(n, t) for n, t in own if t is not None]
        for child_name, child in self.children():
            named += child.named_buffers(f"{prefix}{child_name}.")
        return named

    def modules(self) -> Iterator[Module]:
        """This module, then every descendant, depth first."""
        yield self
        for _, child in self.children():
            yield from child.modules()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's .grad (to None by default, as PyTorch >= 2.0 does)."""
        zero_grads(self.parameters(), set_to_none)

    def train(self, mode: bool = True) -> Module:
        """Switch this module and its children to training mode; returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (Dropout off, BatchNorm uses running statistics)."""
        return self.train(False)

    # ---- saving and moving ----------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters then buffers per module, with torch.nn's keys ("0.weight", "0.bias")."""
        sd: OrderedDict[str, Tensor] = OrderedDict()
        self._collect_state(sd, "")
        return sd

    def _collect_state(self, sd: OrderedDict[str, Tensor], prefix: str) -> None:
        for n in self._parameter_names() + self._buffer_names():
            t = getattr(self, n)
            if t is not None:
                sd[prefix + n] = t
        for child_name, child in self.children():
            child._collect_state(sd, f"{prefix}{child_name}.")

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True) -> None:
        """Copy tensors into this module's parameters and buffers in place.

        Every key is checked before anything is copied, so a bad dict leaves the module as it was.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{self._short_name()}.load_state_dict: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            if not isinstance(v, Tensor):
                raise TypeError(
                    f"{self._short_name()}.load_state_dict: {k!r} must be a tensor, "
                    f"got {type(v).__name__}"
                )
            if v.shape != t.shape:
                raise ValueError(
                    f"{self._short_name()}.load_state_dict: {k!r} expected shape "
                    f"{tuple(t.shape)}, got {tuple(v.shape)}"
                )
        for k, t in own.items():
            if k in state_dict:
                t.copy_(state_dict[k])

    def to(
        self,
        device: torch.device | str | torch.dtype | None = None,
        dtype: torch.dtype | None = None,
    ) -> Module:
        """Move parameters, their grads and buffers; floating tensors take ``dtype``. Returns self.

        As in PyTorch, build the optimizer after moving the model: moved tensors are new objects.
        """
        if isinstance(device, torch.dtype):
            device, dtype = None, device

        def move(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        self._apply(move)
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> None:
        for m in self.modules():
            for n in m._parameter_names() + m._buffer_names():
                t = getattr(m, n)
                if t is None:
                    continue
                moved = fn(t)
                if t.grad is not None:
                    moved.grad = fn(t.grad)
                setattr(m, n, moved)

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this module (saved as JSON by hg.save)."""
        return {}

    def summary(self, input_shape: tuple[int, ...] | list[int], batch_size: int = 2) -> str:
        """Print and return each layer's output shape and parameter count, and the total.

        `input_shape` excludes the batch dimension, as Keras's summary does; a dummy batch of
        zeros runs through the model in eval mode (the mode is restored afterwards).
        """
        rows = [("layer", "output shape", "params")]
        was_training = self.training
        self.eval()
        try:
            p = next(iter(self.parameters()), None)
            x = torch.zeros(
                (batch_size, *input_shape),
                dtype=p.dtype if p is not None else None,
                device=p.device if p is not None else None,
            )
            layers = list(self.children()) or [("", self)]
            for name, layer in layers:
                x = layer(x)
                count = sum(t.numel() for t in layer.parameters())
                label = f"{name}: {layer._short_name()}" if name else layer._short_name()
                rows.append((label, str((None, *x.shape[1:])), f"{count:,}"))
        finally:
            self.train(was_training)
        total = sum(t.numel() for t in self.parameters())
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        line = "-" * (w[0] + w[1] + w[2] + 4)
        out = [line] + [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows[:1]] + [line]
        out += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows[1:]]
        out += [line, f"total parameters: {total:,}", line]
        text = "\n".join(out)
        print(text)
        return text

    # ---- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def _short_name(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self) -> str:
        children = self.children()
        if not children:
            return self._short_name()
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    # ---- helpers layers use to reject bad calls -----------------------------------------------
    def _saved(self, t: Tensor | None) -> Tensor:
        """Return a tensor forward() cached, or explain that forward() has not run."""
        if t is None:
            raise self._no_forward()
        return t

    def _no_forward(self) -> RuntimeError:
        return RuntimeError(
            f"{self._short_name()}.backward() called before forward() (each forward allows "
            "one backward: backward releases what forward kept, as torch frees its graph)"
        )

    def _check_grad_output(self, dy: Tensor, shape: torch.Size) -> None:
        if not isinstance(dy, Tensor):
            raise TypeError(f"{self._short_name()}.backward: expected a tensor, got {type(dy)}")
        if dy.shape != shape:
            raise ValueError(
                f"{self._short_name()}.backward: expected a gradient of the output's shape "
                f"{tuple(shape)}, got {tuple(dy.shape)}"
            )

    def _check_features(self, x: Tensor, in_features: int, weight: Tensor) -> None:
        """x is floating, (..., in_features), with the weight's dtype and device."""
        self._check_input(x, min_dim=1)
        if x.shape[-1] != in_features:
            raise ValueError(
                f"{self._short_name()}: expected input with {in_features} features "
                f"(last dim), got shape {tuple(x.shape)}"
            )
        self._check_like(x, weight)

    def _check_like(self, x: Tensor, weight: Tensor) -> None:
        if x.dtype != weight.dtype or x.device != weight.device:
            raise TypeError(
                f"{self._short_name()}: input is {x.dtype} on {x.device}, but the layer is "
                f"{weight.dtype} on {weight.device}; move one with .to()"
            )

    def _check_input(self, x: Tensor, min_dim: int = 0) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"{self._short_name()}: expected a torch.Tensor, got {type(x).__name__}"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"{self._short_name()}: expected a floating-point input, got {x.dtype} "
                "(convert with x.float())"
            )
        if x.dim() < min_dim:
            raise ValueError(
                f"{self._short_name()}: expected an input with at least {min_dim} dimension(s), "
                f"got shape {tuple(x.shape)}"
            )


class Sequential(Module):
    """Chains modules: forward runs them in order, backward in reverse. Keys as torch.nn."""

    def __init__(self, *modules: Module) -> None:
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(
                    f"Sequential: item {i} is {type(m).__name__}, not a handgrad Module"
                )
            self._check_not_repeated(m, modules[:i])
        self.layers: list[Module] = list(modules)

    @staticmethod
    def _check_not_repeated(m: Module, before: Sequence[Module]) -> None:
        """A module caches its own forward input, so one object cannot sit at two places."""
        for j, other in enumerate(before):
            if other is m:
                raise ValueError(
                    f"Sequential: the same {m._short_name()} object is used at position {j} and "
                    "again later; create one module per position"
                )

    def children(self) -> list[tuple[str, Module]]:
        return [(str(i), m) for i, m in enumerate(self.layers)]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy: Tensor) -> Tensor:
        """dL/dx of a composition is the chain rule: each layer's backward, last to first."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def backward_params(self, dy: Tensor) -> None:
        """As backward, but the first layer skips dL/dx (fit uses this: data needs no grad)."""
        for layer in reversed(self.layers[1:]):
            dy = layer.backward(dy)
        if self.layers:
            self.layers[0].backward_params(dy)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: {type(module).__name__} is not a handgrad Module")
        self._check_not_repeated(module, self.layers)
        self.layers.append(module)
        return self
