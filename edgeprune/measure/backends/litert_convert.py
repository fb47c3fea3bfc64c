"""Converting a model to .tflite (fp32, and int8 by ai-edge-quantizer), as a script that
runs in LiteRT's own environment (`edgeprune litert-env`): litert-torch pins an older
typing-extensions (through xdsl) than edgeprune's other users get, so it cannot share
their environment. It imports neither edgeprune nor pydantic, only torch (the
environment's parent's: same version), litert-torch and ai-edge-quantizer.

    python litert_convert.py JOB.json      -> prints one JSON line: {"fp32": path, "int8": path} or {"error": ...}

JOB: {"program": a torch.export.save file, "example": [N, C, H, W], "fp32": out path,
      "int8": out path or null, "calibration": a .npy of float32 NCHW images or null}
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MEAN", "AVERAGE_POOL_2D")


def convert(job: dict) -> dict:
    import numpy as np
    import torch

    import litert_torch
    model = torch.export.load(job["program"]).module()
    example = torch.zeros(*job["example"])
    litert_torch.convert(model, (example,)).export(job["fp32"])
    out = {"fp32": job["fp32"]}
    if job.get("int8"):
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import qtyping, quantizer, recipe_manager
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
        signatures = Interpreter(job["fp32"]).get_signature_list()
        name = next(iter(signatures))
        feed = signatures[name]["inputs"][0]
        images = np.load(job["calibration"]).astype(np.float32)
        batch = job["example"][0]
        data = [{feed: np.ascontiguousarray(images[i:i + batch])} for i in range(0, len(images) - batch + 1, batch)]
        # int8 weights and activations for the layers that compute; other ops (a CIFAR ResNet's
        # shortcut scatter, which the quantizer cannot calibrate) stay float
        recipes = recipe_manager.RecipeManager()
        for op in INT8_OPS:
            recipes.add_static_config(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                      activation_num_bits=8, weight_num_bits=8,
                                      algorithm_key=AlgorithmName.MIN_MAX_UNIFORM_QUANT)
        q = quantizer.Quantizer(job["fp32"], recipes.get_quantization_recipe())
        result = q.quantize(q.calibrate({name: data}))
        result.export_model(job["int8"], overwrite=True)
        out["int8"] = job["int8"]
    return out


def main() -> int:
    job = json.loads(open(sys.argv[1]).read())
    try:
        with contextlib.redirect_stdout(io.StringIO()):    # the converters' progress output
            out = convert(job)
    except Exception as e:  # noqa: BLE001 - reported to the parent in one line
        text = " ".join(str(e).split())[:300]
        print(json.dumps({"error": f"{type(e).__name__}: {text}"}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
