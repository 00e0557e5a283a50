"""2.2: the lab's own code (a test fixture): Softmax() defaults to dim 0, exp is not shifted."""

import torch


class Softmax:
    def __init__(self, dim: int = 0):
        assert dim == 0 or dim == 1
        self.dim = dim

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        exp = torch.exp(inputs)
        return exp / torch.sum(exp, dim=self.dim).unsqueeze(self.dim)
