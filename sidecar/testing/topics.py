"""Two small vocabularies for traffic that switches topic (drift tests, demos, benchmarks)."""

from __future__ import annotations

import random

SUPPORT = [
    "billing",
    "invoice",
    "refund",
    "charge",
    "payment",
    "card",
    "account",
    "subscription",
    "plan",
    "price",
]
TRAVEL = [
    "flight",
    "hotel",
    "booking",
    "luggage",
    "passport",
    "visa",
    "airport",
    "train",
    "ticket",
    "seat",
]
TOPICS = {"support": SUPPORT, "travel": TRAVEL}


def question(rng: random.Random, words: list[str], length: tuple[int, int]) -> str:
    """A bag-of-words "question" of ``length[0]``-``length[1]`` words from ``words``."""
    return " ".join(rng.choices(words, k=rng.randint(*length)))
