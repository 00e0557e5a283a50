"""Module: the protocol every layer, loss and model follows (docs/design.md#the-protocol).

``forward(*inputs)`` computes the output, usually with an op pair from ``handgrad.ops``, and
pushes what backward needs on the module's cache stack (``push_cache``). ``backward(*grads)``
pops the latest cache (``pop_cache``: last in, first out), adds the parameter gradients into
each parameter's ``.grad`` (``add_grad``: ``+=``, as PyTorch does) and returns dL/dinput. So a
module may run k times and then be backpropagated k times in reverse: an RNN cell through
time, one layer at two places, a weight tied to another.

Forwards that will not be backpropagated keep nothing under ``with hg.no_cache():``.
Parameters are plain tensors named by the class (``parameter_names``); children are the
Module-valued attributes, found when asked for (no ``__setattr__`` magic).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from handgrad import registry
from handgrad.errors import (
    ArgumentTypeError,
    InputError,
    ShapeError,
    StateDictError,
    UsageError,
)
from handgrad.mode import _mode, autocasting, no_cache

__all__ = ["Module", "accumulate_grad", "no_cache", "require_module", "zero_grads"]

CACHE_WARN_AT = 10_000  # caches on one module's stack: forwards that no backward follows
_warned_undeclared: set[type] = set()  # classes warned for tensors outside parameter_names


def accumulate_grad(param: Tensor, grad: Tensor) -> None:
    """param.grad += grad, creating .grad on first use (PyTorch's accumulation rule).

    On first use `grad` becomes ``.grad`` itself (no copy), so it must be a tensor that nothing
    else holds; a view (of dy, say) is copied first.
    """
    if param.grad is None:
        param.grad = grad.clone() if grad._is_view() else grad
    else:
        param.grad += grad


def require_module(owner: str, what: str, obj: Any) -> None:
    """Refuse anything but a handgrad Module, naming it (a torch.nn one with the way across)."""
    if isinstance(obj, Module):
        return
    kind = type(obj)
    name = f"{kind.__module__}.{kind.__qualname__}"
    hint = ""
    if kind.__module__.startswith("torch.nn"):
        hint = f"; handgrad's twin is hg.{kind.__name__} (hg.from_torch converts a model)"
    raise ArgumentTypeError(f"{owner}: {what} must be a handgrad Module, got {name}{hint}")


def zero_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Clear each tensor's .grad: to None (PyTorch's default since 2.0), or to zeros in place."""
    for p in params:
        if set_to_none:
            p.grad = None
        elif p.grad is not None:
            p.grad.zero_()


class Module:
    """Base class: ``__call__`` runs ``forward``; ``backward`` takes dL/doutput, returns dL/dinput.

    A subclass names its trainable tensors in ``parameter_names`` and its saved non-trainable
    state in ``buffer_names`` (a None attribute is skipped, e.g. ``bias=False``), returns its
    constructor arguments from ``config()`` (what ``hg.save`` stores), and sets ``torch_name``
    when torch.nn has the same module.
    """

    parameter_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()
    torch_name: str | None = None  # the torch.nn class with the same math, arguments and keys
    cli_name: str | None = None  # the name the command line offers it under, if it does
    training: bool = True
    frozen: bool = False
    _caches: list[Any]  # the cache stack, made by the first forward that keeps one

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        registry.register(cls)  # the one registry: save/load, interop, CLI and __all__ read it

    # ---- the protocol ---------------------------------------------------------------------
    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, *grads: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        out = self.forward(*inputs, **kwargs)  # keyword options too, as torch's forward takes
        if _mode.calls is not None:
            _mode.calls.append((self, out))
        return out

    def backward_params(self, *grads: Any) -> None:
        """Accumulate the parameter gradients only, for a caller with no use for dL/dinput
        (the first layer of a model trained on data, as torch skips inputs without
        requires_grad). Layers whose dL/dx costs a matrix product override this to skip it."""
        self.backward(*grads)

    # ---- the cache stack ------------------------------------------------------------------
    def push_cache(self, cache: Any) -> bool:
        """Keep `cache` for the next backward; under ``no_cache`` keep nothing. Returns whether
        it was kept."""
        if not _mode.caching:
            return False
        try:
            self._caches.append(cache)
        except AttributeError:  # the first forward of this module
            self._caches = [cache]
        if len(self._caches) == CACHE_WARN_AT and not self.__dict__.get("_cache_warned"):
            self._cache_warned = True  # once per module
            warnings.warn(
                f"{self._short_name()}: {CACHE_WARN_AT} forwards wait for their backward, each "
                "keeping its cache; run forwards you will not backpropagate under "
                "`with hg.no_cache():` (or call model.clear_cache())",
                UserWarning,
                stacklevel=3,
            )
        return True

    def pop_cache(self) -> Any:
        """The cache of the latest forward not yet backpropagated (last in, first out)."""
        stack = getattr(self, "_caches", None)
        if not stack:
            raise UsageError(
                f"{self._short_name()}.backward() called more often than forward() (each "
                "forward allows one backward; forwards under hg.no_cache() keep nothing)"
            )
        return stack.pop()

    def pending(self) -> int:
        """How many forwards of this module wait for their backward."""
        return len(getattr(self, "_caches", ()))

    def clear_cache(self) -> Module:
        """Drop every cache that forwards of this module and its children left. Returns self."""
        for m in self.modules():
            m.__dict__.pop("_caches", None)
        return self

    def add_grad(self, param: Tensor | None, grad: Tensor | None) -> None:
        """accumulate_grad(param, grad), except for a frozen module or a None."""
        if param is not None and grad is not None and not self.frozen:
            accumulate_grad(param, grad)

    # ---- structure ------------------------------------------------------------------------
    def children(self) -> list[tuple[str, Module]]:
        """(name, module) of the direct sub-modules: the attributes that hold a Module, in the
        order they were set. Containers override this."""
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[Any]:
        """(dotted name, module) for this module and every descendant, depth first; a module
        at several places comes once, at its first place, unless remove_duplicate=False."""
        seen: set[int] = set()

        def walk(m: Module, name: str) -> Iterator[tuple[str, Module]]:
            if remove_duplicate:
                if id(m) in seen:
                    return
                seen.add(id(m))
            yield name, m
            for child_name, child in m.children():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def get_submodule(self, target: str) -> Module:
        """The descendant at a dotted path ("0", "encoder.fc"), as torch.nn's; "" is self."""
        m = self
        for part in target.split(".") if target else []:
            children = dict(m.children())
            if part not in children:
                raise AttributeError(f"{m._short_name()} has no child {part!r} (in {target!r})")
            m = children[part]
        return m

    def modules(self) -> Iterator[Module]:
        """This module, then every descendant, depth first, each once."""
        for _, m in self.named_modules():
            yield m

    def _named_tensors(self, kind: str, remove_duplicate: bool) -> list[tuple[str, Tensor]]:
        seen: set[int] = set()
        named = []
        for prefix, m in self.named_modules(remove_duplicate=remove_duplicate):
            for n in getattr(m, kind):
                t = getattr(m, n)
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                named.append((f"{prefix}.{n}" if prefix else n, t))
        return named

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """(dotted name, tensor) of every trainable tensor, each once (a tied tensor at its
        first place), in the order torch.nn lists them. A class that names no parameters or
        buffers but holds floating tensors is warned about (once): nothing would train them."""
        for m in self.modules():
            if not (m.parameter_names or m.buffer_names) and type(m) not in _warned_undeclared:
                _warn_undeclared(m)
        return self._named_tensors("parameter_names", remove_duplicate=True)

    def parameters(self) -> list[Tensor]:
        """Every trainable tensor of this module and its children, each once."""
        return [t for _, t in self.named_parameters()]

    def named_buffers(self) -> list[tuple[str, Tensor]]:
        """(dotted name, tensor) of the saved non-trainable state (running statistics)."""
        return self._named_tensors("buffer_names", remove_duplicate=True)

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

    def freeze(self, frozen: bool = True) -> Module:
        """Freeze this module and its children: their parameters get no gradient (so no
        optimizer step); the gradient still flows through to the input. Returns self."""
        for m in self.modules():
            m.frozen = frozen
        return self

    def unfreeze(self) -> Module:
        """Undo freeze(): parameters get gradients again. Returns self."""
        return self.freeze(False)

    # ---- saving and moving ----------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters then buffers per module, with torch.nn's keys ("0.weight", "0.bias").
        As in torch, a tensor at two places appears under both keys."""
        sd: OrderedDict[str, Tensor] = OrderedDict()
        for prefix, m in self.named_modules(remove_duplicate=False):
            for n in m.parameter_names + m.buffer_names:
                t = getattr(m, n)
                if t is not None:
                    sd[f"{prefix}.{n}" if prefix else n] = t
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True) -> None:
        """Copy tensors into this module's parameters and buffers in place.

        Every key is checked before anything is copied, so a bad dict leaves the module as it was.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise StateDictError(
                f"{self._short_name()}.load_state_dict: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for k, t in own.items():
            v = state_dict.get(k)
            if k not in state_dict:
                continue
            if not isinstance(v, Tensor):
                raise ArgumentTypeError(
                    f"{self._short_name()}.load_state_dict: {k!r} must be a tensor, "
                    f"got {type(v).__name__}"
                )
            if v.shape != t.shape:
                raise InputError(
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

        As torch.nn.Module.to keeps its Parameters, each parameter (and its .grad) stays the
        same tensor object with its data replaced (``p.data = p.data.to(...)``), so an
        optimizer built before the move still steps the model. Buffers become new tensors, as
        torch's do. A tensor shared by several modules stays shared.
        """
        if isinstance(device, torch.dtype):
            device, dtype = None, device

        def move(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        self._apply(move)
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> None:
        """fn on every parameter (in place: the same objects), .grad and buffer (new ones)."""
        moved: dict[int, Tensor] = {}  # one result per tensor: ties survive the move
        for m in self.modules():
            for n in m.parameter_names + m.buffer_names:
                t = getattr(m, n)
                if t is None:
                    continue
                if id(t) not in moved:
                    in_place = n in m.parameter_names
                    moved[id(t)] = _apply_in_place(t, fn) if in_place else fn(t)
                setattr(m, n, moved[id(t)])
        self.clear_cache()  # caches hold tensors of the old device and dtype

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this module (saved as JSON by hg.save).
        Module-valued arguments are saved as modules (see Residual)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Module:
        """The module that config() describes; containers whose constructor takes the
        modules positionally override this."""
        return cls(**config)

    @classmethod
    def config_from_torch(cls, m: Any) -> dict[str, Any]:
        """The config() of the handgrad twin of the torch.nn module m, read from m's attributes
        of the same names (a bias tensor or None means bias=True/False). from_torch then checks
        that the twin rebuilds m exactly, and refuses m if not."""
        import inspect

        config = {}
        for name in inspect.signature(cls).parameters:
            if name in ("device", "dtype") or not hasattr(m, name):
                continue
            value = getattr(m, name)
            config[name] = value is not None if name == "bias" else value
        return config

    # ---- printing -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not _is_module(v))

    def _short_name(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self) -> str:
        children = self.children()
        if not children:
            return self._short_name()
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def summary(self, input_shape: tuple[int, ...] | list[int], batch_size: int = 2) -> str:
        """Print and return each child's output shape and parameter count, and the total.

        `input_shape` excludes the batch dimension, as Keras's summary does; a dummy batch of
        zeros runs through the model in eval mode under no_cache (the mode is restored).
        """
        from handgrad.summary import summary

        return summary(self, tuple(input_shape), batch_size)

    # ---- checks layers run on what they are given -----------------------------------------
    def _check_grad_output(self, dy: Tensor, shape: torch.Size) -> None:
        if not isinstance(dy, Tensor):
            raise ArgumentTypeError(
                f"{self._short_name()}.backward: expected a tensor, got {type(dy)}"
            )
        if dy.shape != shape:
            raise ShapeError(
                f"{self._short_name()}.backward: expected a gradient of the output's shape "
                f"{tuple(shape)}, got {tuple(dy.shape)}"
            )

    def _check_features(self, x: Tensor, in_features: int, weight: Tensor) -> None:
        """x is floating, (..., in_features), with the weight's dtype and device."""
        if (
            isinstance(x, Tensor)
            and x.dim() >= 1
            and x.shape[-1] == in_features
            and x.is_floating_point()
            and x.dtype == weight.dtype
            and x.device == weight.device
        ):
            return  # the usual input, in one test (a step pays for one call); else name the fault
        self._check_input(x, min_dim=1)
        if x.shape[-1] != in_features:
            raise ShapeError(
                f"{self._short_name()}: expected input with {in_features} features "
                f"(last dim), got shape {tuple(x.shape)}"
            )
        self._check_like(x, weight)

    def _check_like(self, x: Tensor, weight: Tensor) -> None:
        mixed = x.dtype != weight.dtype and not autocasting(x.device.type)  # bf16 under autocast
        if mixed or x.device != weight.device:
            raise ShapeError(
                f"{self._short_name()}: input is {x.dtype} on {x.device}, but the layer is "
                f"{weight.dtype} on {weight.device}; move one with .to()"
            )

    def _check_input(self, x: Tensor, min_dim: int = 0) -> None:
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(
                f"{self._short_name()}: expected a torch.Tensor, got {type(x).__name__}"
            )
        if not x.is_floating_point():
            raise ShapeError(
                f"{self._short_name()}: expected a floating-point input, got {x.dtype} "
                "(convert with x.float())"
            )
        if x.dim() < min_dim:
            raise ShapeError(
                f"{self._short_name()}: expected an input with at least {min_dim} dimension(s), "
                f"got shape {tuple(x.shape)}"
            )


def _apply_in_place(t: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """t with its data (and its .grad's) replaced by fn's: t itself, as torch keeps a Parameter."""
    grad, t.grad = t.grad, None  # dropped while t's dtype or device changes under it
    new = fn(t)
    if new is not t:
        t.data = new
    if grad is not None:
        new_grad = fn(grad)
        if new_grad is not grad:
            grad.data = new_grad
        t.grad = grad
    return t


def _warn_undeclared(m: Module) -> None:
    """Warn (once per class) when m holds floating tensors but its class names none of them."""
    held = [n for n, v in vars(m).items() if not n.startswith("_") and _holds_float_tensor(v)]
    if held:
        _warned_undeclared.add(type(m))
        warnings.warn(
            f"{type(m).__name__} holds tensors {', '.join(held)} but names no parameter_names: "
            "named_parameters(), optimizers, hg.save and check see none of them; list the "
            "trainable ones in parameter_names (and saved state in buffer_names)",
            UserWarning,
            stacklevel=3,
        )


def _holds_float_tensor(v: Any) -> bool:
    """A floating tensor, or a list/tuple/dict holding one."""
    if isinstance(v, (list, tuple)):
        return any(_holds_float_tensor(x) for x in v)
    if isinstance(v, dict):
        return any(_holds_float_tensor(x) for x in v.values())
    return isinstance(v, Tensor) and v.is_floating_point()


def _is_module(v: Any) -> bool:
    """A module, or a list/dict holding modules: printed as children, not in extra_repr."""
    if isinstance(v, (list, tuple)):
        return any(_is_module(x) for x in v)
    if isinstance(v, dict):
        return any(_is_module(x) for x in v.values())
    return isinstance(v, Module)
