"""Kept for its old import path: tables' preprocessing lives in handgrad.data.preprocessing."""

from handgrad.data.preprocessing import *  # noqa: F403
