"""4.5, solved (a test fixture)."""

import torch


class SoftmaxCrossEntropyLoss:
    def _softmax(self, z):
        exp = torch.exp(z - z.max(dim=-1, keepdim=True).values)
        return exp / exp.sum(dim=-1, keepdim=True)

    def forward(self, z: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        shifted = z - z.max(dim=-1, keepdim=True).values
        log_p = shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
        return -log_p[torch.arange(len(z)), y_true].mean()

    def backward(self, z: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        grad = self._softmax(z)
        grad[torch.arange(len(z)), y_true] -= 1
        return grad / len(z)


if __name__ == "__main__":
    torch.manual_seed(0)
    z = torch.randn(4, 3)
    y = torch.tensor([0, 2, 1, 1])
    print(SoftmaxCrossEntropyLoss().forward(z, y))
