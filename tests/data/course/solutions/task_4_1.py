"""4.1, solved (a test fixture)."""

import torch


class MSELoss:
    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return (y_pred - y_true) ** 2

    def backward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return 2 * (y_pred - y_true)


class Neuron:
    def __init__(self, in_features: int):
        self.in_features = in_features
        self.weights = torch.randn(in_features)
        self.bias = torch.randn(1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sum(inputs * self.weights) + self.bias

    def backward(self, dvalue: torch.Tensor, inputs: torch.Tensor):
        return dvalue * inputs, dvalue


def train(X, y, epochs, lr):
    y_true = y.unsqueeze(1)
    neuron, loss = Neuron(X.shape[1]), MSELoss()
    losses = []
    for _ in range(epochs):
        total = 0.0
        for x_example, y_example in zip(X, y_true):
            y_pred = neuron.forward(x_example)
            total += float(loss.forward(y_pred, y_example))
            dw, db = neuron.backward(loss.backward(y_pred, y_example), x_example)
            neuron.weights -= lr * dw
            neuron.bias -= lr * db
        losses.append(total / len(X))
    return neuron, losses


if __name__ == "__main__":
    from sklearn.datasets import make_regression

    X, y, coef = make_regression(n_features=4, n_informative=4, coef=True, bias=0.5, random_state=0)
    X = torch.tensor(X, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32)
    torch.manual_seed(0)
    neuron, losses = train(X, y, epochs=100, lr=0.1)
    print(neuron.weights, coef)
