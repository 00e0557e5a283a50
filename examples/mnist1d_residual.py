"""The MNIST-1D paper's MLP, by hand, with its residual connection and without it.

The paper's MLP (mnist1d/models.py) is  h = relu(linear1(x));  h = h + relu(linear2(h));
logits = linear3(h), hidden width 100: in handgrad
    Sequential(Linear(40, 100), ReLU(), Residual(Sequential(Linear(100, 100), ReLU())),
               Linear(100, 10))
and the plain MLP beside it drops the "h +". Both train as the paper's script does: Adam,
lr 1e-2, batches of 100 drawn at random, 6000 steps, the 4000/1000 split; the paper reports
68% for its MLP.

Run:  .venv/bin/python examples/mnist1d_residual.py [--seeds 0 1 2] [--steps 6000]
      [--compare-torch]   (also the same model in torch.nn with autograd, same init and batches)
Prints the final test accuracy of each model per seed and their means (README, "Sequence
models").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import handgrad as hg


def residual_mlp(width: int = 100) -> hg.Sequential:
    """The paper's MLP: h = relu(W1 x); h = h + relu(W2 h); W3 h."""
    return hg.Sequential(
        hg.Linear(40, width),
        hg.ReLU(),
        hg.Residual(hg.Sequential(hg.Linear(width, width), hg.ReLU())),
        hg.Linear(width, 10),
    )


def plain_mlp(width: int = 100) -> hg.Sequential:
    """The same layers without the skip: h = relu(W2 relu(W1 x)); W3 h."""
    return hg.Sequential(
        hg.Linear(40, width), hg.ReLU(), hg.Linear(width, width), hg.ReLU(), hg.Linear(width, 10)
    )


MODELS = {"residual": residual_mlp, "plain": plain_mlp}


def torch_twin(model: hg.Sequential) -> torch.nn.Module:
    """The same network in torch.nn, with the same keys and weights."""
    import torch.nn as nn

    class Residual(nn.Module):
        def __init__(self, fn: nn.Module) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.fn(x)

    layers: list[nn.Module] = []
    for layer in model:
        if isinstance(layer, hg.Residual):
            layers.append(Residual(nn.Sequential(nn.Linear(100, 100), nn.ReLU())))
        elif isinstance(layer, hg.Linear):
            layers.append(nn.Linear(layer.in_features, layer.out_features))
        else:
            layers.append(nn.ReLU())
    twin = nn.Sequential(*layers)
    twin.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    return twin


def run_torch(twin: torch.nn.Module, data, seed: int, steps: int, batch: int, lr: float) -> float:
    opt = torch.optim.Adam(twin.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)  # the same batches as handgrad's run
    for _ in range(steps):
        idx = torch.randint(len(data.X), (batch,), generator=gen)
        loss = torch.nn.functional.cross_entropy(twin(data.X[idx]), data.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((twin(data.X_test).argmax(1) == data.y_test).float().mean())


def run(
    name: str, seed: int, steps: int, batch: int, lr: float, compare_torch: bool = False
) -> float:
    torch.manual_seed(seed)
    data = hg.datasets.mnist1d()
    model = MODELS[name]()
    twin = torch_twin(model) if compare_torch else None
    opt = hg.optim.Adam(model.parameters(), lr=lr)
    loss_fn = hg.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(data.X), (batch,), generator=gen)
        loss_fn(model(data.X[idx]), data.y[idx])
        opt.zero_grad()
        model.backward_params(loss_fn.backward())
        opt.step()
    assert data.X_test is not None and data.y_test is not None
    acc = hg.evaluate(model, (data.X_test, data.y_test), metrics=["accuracy"], threads=None)
    seconds = time.perf_counter() - start
    print(f"{name:>8} seed {seed}: test accuracy {acc['accuracy']:.4f} ({seconds:.1f} s)")
    if twin is not None:
        t_acc = run_torch(twin, data, seed, steps, batch, lr)
        print(f"{'':>8} torch, same init and batches: test accuracy {t_acc:.4f}")
    return acc["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (small steps: 1)")
    ap.add_argument("--compare-torch", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in MODELS:
        accs = [
            run(name, s, args.steps, args.batch, args.lr, args.compare_torch) for s in args.seeds
        ]
        print(
            f"{name} MLP, mean test accuracy over seeds {args.seeds}: "
            f"{statistics.mean(accs):.4f} ({', '.join(f'{a:.3f}' for a in accs)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
