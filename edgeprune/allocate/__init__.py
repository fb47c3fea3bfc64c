"""Layer-wise widths: how many channels each coupled group keeps so that a MACs,
parameters or latency budget is met at the least predicted loss.

  groups       edgeprune.prune.channel_structure: the groups and the layers they govern
  cost.py      exact MACs / parameters of any widths; the latency model's features
  sensitivity  the measured map: loss when one group alone keeps each of several widths
  latency.py   a latency model fitted to whole-network timings in a runtime
  rounding.py  the channel multiple a runtime runs fastest, measured
  problem.py   what an allocator is asked; greedy.py, global_rank.py how built-ins answer
  allocators   the registry's entries: uniform, global, sensitivity, latency (plugins add theirs)
  run.py       `allocate(problem, allocator)`: checked widths and what they predict
  apply.py     `prune_to_widths`: a model pruned to chosen widths (checked)

The sweep wires it into a trial's pruning step (edgeprune.sweep.allocation).
"""
from .allocators import UNIFORM, Allocator, FunctionAllocator
from .apply import prune_to_widths
from .cost import CostModel, LatencyCost, LatencyFeatures, MacsCost, ParamsCost, uniform_widths
from .latency import LatencyModel, fit_latency_model
from .problem import Problem, width_choices
from .rounding import RuntimeProfile, fast_multiple
from .run import Allocation, allocate
from .sensitivity import SensitivityMap, measure_sensitivity

__all__ = ["UNIFORM", "Allocator", "FunctionAllocator", "CostModel", "MacsCost", "ParamsCost", "LatencyCost",
           "LatencyFeatures", "uniform_widths", "LatencyModel", "fit_latency_model", "Problem", "width_choices",
           "RuntimeProfile", "fast_multiple", "Allocation", "allocate", "SensitivityMap", "measure_sensitivity",
           "prune_to_widths"]
