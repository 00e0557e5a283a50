"""5.1: SGD with momentum (the course's correct solution, a test fixture)."""

import torch


class SGDMomentum:
    def __init__(self, lr: float, momentum: float = 0.9):
        self.lr = lr
        self.momentum = momentum
        self.buffers: dict[int, dict] = {}

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        for i, (p, g) in enumerate(zip(params, grads)):
            state = self.buffers.setdefault(i, {})
            if "b" in state:
                state["b"] = self.momentum * state["b"] + g
            else:
                state["b"] = g.clone()
            p -= self.lr * state["b"]
