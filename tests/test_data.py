"""DataLoader: batch counts, shuffling determinism, sharding, bad input."""

from __future__ import annotations

import pytest
import torch

from handgrad.data import DataLoader

X = torch.arange(10.0).view(10, 1)
Y = torch.arange(10)


@pytest.mark.parametrize(
    "batch_size,drop_last,sizes",
    [
        (None, False, [10]),
        (1, False, [1] * 10),
        (3, False, [3, 3, 3, 1]),
        (3, True, [3, 3, 3]),
        (10, False, [10]),
        (25, False, [10]),
    ],
)
def test_batch_counts(batch_size, drop_last, sizes):
    loader = DataLoader(X, Y, batch_size=batch_size, drop_last=drop_last, shuffle=True, seed=0)
    assert len(loader) == len(sizes)
    assert [len(xb) for xb, _ in loader] == sizes


def test_every_example_once_per_epoch_and_pairs_kept():
    loader = DataLoader(X, Y, batch_size=3, seed=1)
    seen = torch.cat([yb for _, yb in loader])
    assert sorted(seen.tolist()) == list(range(10))
    for xb, yb in loader:
        assert torch.equal(xb.view(-1).long(), yb)


def test_seeded_shuffle_is_deterministic_and_changes_per_epoch():
    a = DataLoader(X, Y, batch_size=4, seed=7)
    b = DataLoader(X, Y, batch_size=4, seed=7)
    epoch1 = [yb.tolist() for _, yb in a]
    assert epoch1 == [yb.tolist() for _, yb in b]
    epoch2 = [yb.tolist() for _, yb in a]
    assert epoch2 != epoch1
    c = DataLoader(X, Y, batch_size=4, seed=7)
    c.set_epoch(1)
    assert [yb.tolist() for _, yb in c] == epoch2


def test_no_shuffle_keeps_order_and_full_batch_is_not_copied():
    loader = DataLoader(X, Y, shuffle=False)
    ((xb, yb),) = list(loader)
    assert xb is X and yb is Y


def test_shards_are_disjoint_and_cover_the_data():
    shards = [DataLoader(X, Y, batch_size=2, seed=3, rank=r, world_size=2) for r in range(2)]
    seen = [torch.cat([yb for _, yb in s]).tolist() for s in shards]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(10))


@pytest.mark.parametrize(
    "args,kw,match",
    [
        ((X, Y[:5]), {}, r"same length.*\(10, 1\).*\(5,\)"),
        ((X[:0], Y[:0]), {}, "empty"),
        ((X, Y), {"batch_size": 0}, "batch_size must be None or an int >= 1, got 0"),
        ((X, Y), {"rank": 2, "world_size": 2}, "rank"),
        ((X.tolist(), Y), {}, "must be tensors"),
    ],
)
def test_bad_input(args, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        DataLoader(*args, **kw)
