"""Alternating measurements and the statistics the report uses.

These machines are noisy (two cores, other work running), so absolute times mean little.
Every figure runs its variants in alternation, one round at a time and rotating which goes
first, and compares them round by round: a burst of noise then hits both sides of a pair
rather than one side of the whole comparison.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

# A variant measures itself and returns seconds: setup (a FIFO, a thread) stays outside the clock.
Variant = Callable[[], float]
ProgressFn = Callable[[str], None]


def alternate(
    variants: Mapping[str, Variant],
    rounds: int,
    *,
    warmup: int = 1,
    progress: ProgressFn | None = None,
    unit: str = "s",
    after: Callable[[], object] | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Run every variant once per round, rotating the order; return the seconds of each, by name.

    ``warmup`` rounds run first and are thrown away (page cache, imports, first connections).
    With two variants the order goes AB, BA, AB...; with three ABC, BCA, CAB...
    ``after`` runs after each measurement, outside the clock (clean-up between runs).

    The engine is shared: another process may kill a container or restart the daemon under
    us. A measurement that raises is retried once (``on_retry`` is told why); a second
    failure is raised.
    """
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for number in range(-warmup, rounds):
        shift = number % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            seconds = _measure_once(variants[name], name, after, on_retry)
            if number >= 0:
                samples[name].append(seconds)
        if progress is not None and number >= 0:
            progress(f"round {number + 1}/{rounds}: " + ", ".join(f"{n} {samples[n][-1]:.3f}{unit}" for n in names))
    return samples


def _measure_once(
    variant: Variant, name: str, after: Callable[[], object] | None, on_retry: Callable[[str], None] | None
) -> float:
    for attempt in (1, 2):
        try:
            return variant()
        except Exception as error:
            if attempt == 2:
                raise
            if on_retry is not None:
                on_retry(f"{name}: retried after {type(error).__name__}: {str(error)[:300]}")
        finally:
            if after is not None:
                after()
    raise AssertionError("unreachable")


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes, by ``time.perf_counter``."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """``numerator[i] / denominator[i]`` for each round: the two were measured side by side."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median of the per-round ratios (more robust than a ratio of medians on a noisy machine)."""
    return median(paired_ratios(numerator, denominator))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles (the spread shown next to a median)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def summary(values: Sequence[float], digits: int = 4) -> dict[str, float | int]:
    """Median, quartiles, min, max and count, rounded for the JSON report."""
    low, high = quartiles(values)
    return {
        "median": round(median(values), digits),
        "q1": round(low, digits),
        "q3": round(high, digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def median_interval(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000) -> tuple[float, float]:
    """A bootstrap confidence interval of the median of ``values`` (seeded: the same data give the same interval)."""
    if len(values) < 3:
        return (min(values), max(values)) if values else (float("nan"), float("nan"))
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    cut = int(resamples * (1 - confidence) / 2)
    return medians[cut], medians[-cut - 1]
