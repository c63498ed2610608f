"""Dockyter's benchmarks: what Dockyter costs on top of the container runtime.

``python bench/run.py`` measures every figure of docs/performance.md, each as a ratio
against the bare runtime measured in the same run, and writes ``bench/results/latest.md``
and ``latest.json``. Each figure runs in a fresh worker process (``bench/worker.py``) so that
memory peaks and IPython's singletons never leak from one figure into the next.
"""
