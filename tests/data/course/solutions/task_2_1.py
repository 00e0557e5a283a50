"""2.1, solved (a test fixture)."""

import torch


class ReLU:
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.maximum(inputs, torch.zeros_like(inputs))


if __name__ == "__main__":
    torch.manual_seed(0)
    print(ReLU().forward(torch.randn(4, 3)))
