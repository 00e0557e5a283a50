"""Keyword arguments in a module call, as torch takes them: ``mha(q, k, v, need_weights=False)``,
``lstm(x, hx=(h0, c0))``. Module.__call__ passes positional inputs only; a class that derives
from _KeywordCall binds the keywords to forward's positions first."""

from __future__ import annotations

import inspect
from typing import Any

from handgrad.module import Module


class _KeywordCall(Module):
    """A module whose forward takes keyword arguments as torch's does
    (``mha(q, k, v, need_weights=False)``): they are bound to forward's positions, then the
    call goes through Module.__call__ as usual."""

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        if kwargs:
            bound = inspect.signature(self.forward).bind(*inputs, **kwargs)
            bound.apply_defaults()  # the arguments skipped before a keyword take their defaults
            inputs = bound.args
        return super().__call__(*inputs)
