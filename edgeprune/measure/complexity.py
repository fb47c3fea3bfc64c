"""What a network costs: parameters, MACs, serialized size.

The counters are defined with the models (edgeprune.models.complexity) because
pruning, a stage below this one, searches on them (`{macs: 0.5}` targets); this
module is where the measure stage offers them with its other figures."""
from ..models.complexity import count_macs, count_nonzero_params, count_params, model_size_bytes

__all__ = ["count_params", "count_nonzero_params", "count_macs", "model_size_bytes"]
