"""pass@k by the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on Code").

With `n` samples of a question of which `c` are correct, pass@k = 1 - C(n-c, k) / C(n, k): the chance that
at least one of k samples drawn without replacement from the n is correct. It is computed in the
numerically stable product form 1 - prod_{i=n-c+1}^{n} (1 - k/i), never through the binomials themselves
(which overflow for large n). `store.PASS_AT_K_SQL` is the same formula in DuckDB SQL.
"""

from __future__ import annotations


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one question with `c` correct among `n` samples (1 <= k <= n, 0 <= c <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product
