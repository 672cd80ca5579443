"""pass@k: the unbiased estimator of Chen et al. 2021 (arXiv 2107.03374, "Evaluating Large Language
Models Trained on Code"), from n samples per task of which c are correct.

    pass@k = E_tasks[ 1 - C(n - c, k) / C(n, k) ]

computed as the product 1 - prod_{i = n-c+1}^{n} (1 - k / i), which never forms the (huge)
binomial coefficients. With k = 1 it is the mean fraction correct c / n.
"""
from __future__ import annotations

from collections.abc import Sequence


def pass_at_k_one(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 <= c <= n:
        raise ValueError(f"pass@k: correct count {c} outside 0..{n} samples")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k: k = {k} needs 1 <= k <= n = {n} samples per task")
    if n - c < k:  # every draw of k holds a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k(samples: Sequence[int], correct: Sequence[int], k: int) -> float:
    """Mean pass@k over tasks; ``samples[t]`` completions of task t, ``correct[t]`` of them correct."""
    if len(samples) != len(correct):
        raise ValueError(f"pass@k: {len(samples)} sample counts for {len(correct)} correct counts")
    if not samples:
        raise ValueError("pass@k: no tasks")
    return sum(pass_at_k_one(int(n), int(c), k) for n, c in zip(samples, correct)) / len(samples)
