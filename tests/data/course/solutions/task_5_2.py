"""5.2: Adam with bias correction (the course's correct solution, a test fixture)."""

import torch


class Adam:
    def __init__(
        self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.t = 0
        self.state: dict[int, dict] = {}

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        for i, (p, g) in enumerate(zip(params, grads)):
            s = self.state.setdefault(i, {"m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            s["m"] = b1 * s["m"] + (1 - b1) * g
            s["v"] = b2 * s["v"] + (1 - b2) * g**2
            m_hat = s["m"] / (1 - b1**self.t)
            v_hat = s["v"] / (1 - b2**self.t)
            p -= self.lr * m_hat / (torch.sqrt(v_hat) + self.eps)
