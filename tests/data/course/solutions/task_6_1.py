"""6.1, solved (a test fixture)."""

import torch


class Im2col:
    def __init__(self, kernel_size, stride=1, padding=0):
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        N, C, H, W = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        xp = torch.zeros(N, C, H + 2 * p, W + 2 * p, dtype=x.dtype)
        xp[:, :, p : p + H, p : p + W] = x
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        rows = []
        for n in range(N):
            for i in range(Ho):
                for j in range(Wo):
                    rows.append(xp[n, :, i * s : i * s + k, j * s : j * s + k].reshape(-1))
        return torch.stack(rows)
