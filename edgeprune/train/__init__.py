"""Fine-tuning: `finetune(model, loader, cfg)`; optimisers are a registry
(edgeprune.registry.OPTIMIZERS: sgd, adamw, or a plugin's)."""
from .finetune import FinetuneResult, finetune, planned_steps
from .optim import warmup_cosine
from .recalibrate import recalibrate_bn

__all__ = ["finetune", "FinetuneResult", "planned_steps", "warmup_cosine", "recalibrate_bn"]
