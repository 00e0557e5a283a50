"""2.2, solved (a test fixture)."""

import torch


class Softmax:
    def __init__(self, dim: int = -1):
        self.dim = dim

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        exp = torch.exp(inputs - inputs.max(dim=self.dim, keepdim=True).values)
        return exp / exp.sum(dim=self.dim, keepdim=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    print(Softmax(dim=1).forward(torch.randn(4, 3)))
