"""The random draws the stories are told with: bounded log-normal durations, weighted choices."""

from __future__ import annotations

import itertools
import math
import random
from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class LogNormal:
    """A log-normal duration (seconds) with its median and shape, clipped to [low, high]."""

    median: float
    sigma: float
    low: float
    high: float
    mu: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", math.log(self.median))

    def draw(self, rng: random.Random) -> float:
        return min(self.high, max(self.low, math.exp(rng.gauss(self.mu, self.sigma))))

    def seconds(self, rng: random.Random) -> int:
        return round(self.draw(rng))


def between(rng: random.Random, bounds: tuple[int, int]) -> int:
    """A uniform whole number in [low, high] (``randint`` costs four times as much)."""
    low, high = bounds
    return low + int(rng.random() * (high - low + 1))


class Weighted(Generic[T]):
    """A weighted choice, drawn with one random number."""

    def __init__(self, weights: Mapping[T, float]) -> None:
        self.items = [item for item, weight in weights.items() if weight > 0]
        self.cumulative = list(itertools.accumulate(weights[item] for item in self.items))
        if not self.items:
            raise ValueError("nothing to choose from: every weight is 0")

    def draw(self, rng: random.Random) -> T:
        return self.items[bisect(self.cumulative, rng.random() * self.cumulative[-1])]
