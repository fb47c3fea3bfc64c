"""Fine-tuning: `finetune(model, loader, cfg)`."""
from .finetune import FinetuneResult, finetune, planned_steps
from .optim import OPTIMIZERS, warmup_cosine

__all__ = ["finetune", "FinetuneResult", "planned_steps", "OPTIMIZERS", "warmup_cosine"]
