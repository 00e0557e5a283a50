"""1.1, solved (a test fixture)."""

import torch


class Neuron:
    def __init__(self, weights: torch.Tensor, bias: torch.Tensor):
        self.weights = weights
        self.bias = bias

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sum(inputs * self.weights) + self.bias


if __name__ == "__main__":
    inputs = torch.tensor([1.0, 2.0, 3.0, 4.0])
    neuron = Neuron(torch.tensor([-0.2, 0.3, -0.5, 0.7]), torch.tensor(3.14))
    print(f"Neuron.forward: {neuron.forward(inputs)}")
