"""Data: the DataLoader and the bundled datasets (all offline)."""

from handgrad.data import datasets
from handgrad.data.datasets import Dataset
from handgrad.data.loader import DataLoader

__all__ = ["DataLoader", "Dataset", "datasets"]
