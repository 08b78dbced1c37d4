"""lrd_bench: the benchmark engine behind ``lrd bench`` and ``benchmarks/`` (same code on CPU, GPU, Ascend).

* :mod:`lrd_bench.model`: original vs fixed modes vs ``auto`` for one network — params, MACs, inference
  latency/throughput (batch 1 and B), training step, peak memory — as ratios measured side by side.
* :mod:`lrd_bench.layer`: time vs rank of one layer shape, original vs its factor chain.
* :mod:`lrd_bench.lite`: MindIR files through MindSpore Lite (Ascend 310 inference).
* :mod:`lrd_bench.report`: markdown tables and plots of the results; :mod:`lrd_bench.output`: writing them.
"""
from lrd_core.modes import MODES

#: what ``bench model --modes`` accepts
BENCH_MODES = ("original",) + tuple(m for m in MODES if m != "pareto")   # pareto needs an evaluation
