"""1.2: the lab's own code (a test fixture)."""

import torch


class Linear:
    def __init__(self, weights: torch.Tensor, biases: torch.Tensor):
        self.weights = weights
        self.biases = biases

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.matmul(inputs, self.weights.T) + self.biases


if __name__ == "__main__":
    inputs = torch.tensor([1.0, 2.0, 3.0, 4.0])
    weights = torch.tensor(
        [[-0.2, 0.3, -0.5, 0.7], [0.5, -0.91, 0.26, -0.5], [-0.26, -0.27, 0.17, 0.87]]
    )
    print(Linear(weights, torch.tensor([3.14, 2.71, 7.2])).forward(inputs))
