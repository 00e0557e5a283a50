"""Two gloo processes on this machine end with the weights of one process on the full batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import handgrad as hg
from handgrad.training import distributed as hd


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=g, dtype=torch.float64)
    return X, torch.randint(0, 3, (64,), generator=g)


def _model(seed=0):
    torch.manual_seed(seed)
    return hg.Sequential(hg.Linear(5, 16), hg.Tanh(), hg.Linear(16, 3)).to(torch.float64)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, batch_size, mismatch: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model(seed=rank)  # different starts: prepare() must broadcast rank 0's weights
        if mismatch and rank == 1:
            model = hg.Sequential(hg.Linear(5, 8), hg.Tanh(), hg.Linear(8, 3)).to(torch.float64)
        opt = hg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        try:
            hg.fit(
                model,
                hg.CrossEntropyLoss(),
                opt,
                _data(),
                epochs=5,
                batch_size=batch_size,
                shuffle=True,
                seed=1,
                progress=False,
                distributed=True,
            )
        except RuntimeError as exc:
            torch.save({"error": str(exc)}, f"{out}/rank{rank}.pt")
            return
        torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path, batch_size, mismatch=False):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), batch_size, mismatch), nprocs=2)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("batch_size", [None, 8])
def test_two_processes_equal_one_process_on_the_full_batch(tmp_path, batch_size):
    states = _spawn(tmp_path, batch_size)
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), f"ranks disagree on {k}"
    # one process: each step's batch is the union of the two ranks' batches
    model = _model(seed=0)
    opt = hg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    X, y = _data()
    loss = hg.CrossEntropyLoss()
    shards = [
        hg.data.DataLoader(X, y, batch_size=batch_size, seed=1, rank=r, world_size=2)
        for r in range(2)
    ]
    for epoch in range(1, 6):
        for s in shards:
            s.set_epoch(epoch)
        for (x0, y0), (x1, y1) in zip(*shards):
            opt.zero_grad()
            loss(model(torch.cat([x0, x1])), torch.cat([y0, y1]))
            model.backward(loss.backward())
            opt.step()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(states[0][k], v, rtol=1e-12, atol=1e-12)


def test_processes_with_different_models_stop_with_a_clear_error(tmp_path):
    states = _spawn(tmp_path, None, mismatch=True)
    for s in states:
        assert "processes hold different models" in s["error"]


def test_outside_a_process_group_everything_is_a_no_op():
    model = _model()
    assert hd.rank_and_world_size() == (0, 1)
    hd.prepare(model)
    hd.average_gradients(model)
    with pytest.raises(RuntimeError, match="torchrun"):
        os.environ.pop("RANK", None)
        hd.init()
