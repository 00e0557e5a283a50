"""3.2: the lab's own code (a test fixture): its log is not clipped."""

import torch


class CategoricalCrossEntropyLoss:
    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return -torch.sum(y_true * torch.log(y_pred), dim=1)
