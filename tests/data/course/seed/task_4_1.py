"""4.1: the lab's own code (a test fixture); its loop cell as the contract's train."""

import torch


class MSELoss:
    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return (y_pred - y_true) ** 2  # когда MSE (mean squared error) без mean

    def backward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return 2 * (y_pred - y_true)  # df/dc


class Neuron:
    def __init__(self, in_features: int):
        self.in_features = in_features
        self.weights = torch.randn(self.in_features)
        self.bias = torch.randn(1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sum(inputs * self.weights) + self.bias

    def backward(self, dvalue: torch.Tensor, inputs: torch.Tensor):
        return dvalue * inputs, dvalue  # считаем градиент (типа на предшествующем слое)


def train(X, y, epochs, lr):
    y_true = y.unsqueeze(1)
    neuron = Neuron(X.size(1))
    loss = MSELoss()
    losses = []
    for _epoch in range(1, epochs + 1):
        total = 0.0
        for x_example, y_example in zip(X, y_true):
            y_pred = neuron.forward(x_example)
            curr_loss = loss.forward(y_pred, y_example)
            total += float(curr_loss)
            dw, db = neuron.backward(loss.backward(y_pred, y_example), x_example)
            neuron.weights -= lr * dw
            neuron.bias -= lr * db
        losses.append(total / len(X))
    return neuron, losses
