"""4.4, solved (a test fixture)."""

import torch
from task_4_2 import MSELoss


class Activation_ReLU:
    def forward(self, inputs):
        self.inputs = inputs
        return inputs.clip(min=0)

    def backward(self, dvalues):
        self.dinputs = dvalues.clone()
        self.dinputs[self.inputs <= 0] = 0


class Linear:
    def __init__(self, in_features: int, out_features: int):
        self.in_features = in_features
        self.out_features = out_features
        self.weights = torch.randn(out_features, in_features)
        self.biases = torch.randn(out_features)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ self.weights.T + self.biases

    def backward(self, dvalue: torch.Tensor, inputs: torch.Tensor):
        n = inputs.shape[0]
        return dvalue.T @ inputs / n, dvalue.sum(dim=0) / n, dvalue @ self.weights


def train(X, y, epochs, lr):
    fc1, relu1, fc2 = Linear(X.shape[1], 10), Activation_ReLU(), Linear(10, 1)
    mse = MSELoss()
    losses = []
    for _ in range(epochs):
        hidden = relu1.forward(fc1.forward(X))
        out = fc2.forward(hidden)
        losses.append(float(mse.forward(out, y)))
        dw2, db2, dhidden = fc2.backward(mse.backward(out, y), hidden)
        relu1.backward(dhidden)
        dw1, db1, _ = fc1.backward(relu1.dinputs, X)
        fc1.weights -= lr * dw1
        fc1.biases -= lr * db1
        fc2.weights -= lr * dw2
        fc2.biases -= lr * db2
    return (fc1, relu1, fc2), losses


if __name__ == "__main__":
    torch.manual_seed(0)
    X = torch.linspace(-1, 1, 100).view(-1, 1)
    y = X.pow(2) + 0.2 * torch.rand(X.size())
    (fc1, relu1, fc2), losses = train(X, y, epochs=2001, lr=0.02)
    for epoch in range(0, 2001, 200):
        print(f"epoch {epoch} mean loss {losses[epoch]}")
