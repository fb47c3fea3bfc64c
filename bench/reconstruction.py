"""Recovery without fine-tuning: least-squares rebuilding (edgeprune.recover) against
BatchNorm recalibration and fine-tuning.

    python bench/reconstruction.py --data-dir ../shared/datasets --weights-dir ../shared/models/cifar10 \
        [--quick] [--part real|seed|both] [--models resnet20 resnet56] [--finetune-rates 0.3 0.5]

(a) real: pretrained CIFAR-10 ResNets, l1 and fpgm at rates 0.1..0.8 (uniform per-layer
    channel rate), 2,000 test images. Accuracy right after pruning, after BatchNorm
    recalibration (20 augmented batches of 256), after rebuilding (1,024 unlabeled
    training images), and after rebuilding then recalibrating. For --finetune-rates:
    after 60 and 300 SGD steps (batch 128, lr 0.01 cosine) from the recalibrated and
    from the rebuilt model; the 300-step runs are evaluated every --curve-every steps,
    which gives the steps the recalibrated model needs to reach the rebuilt model's
    zero-step accuracy, against the seconds rebuilding took.
(c) ablation (--part ablation): at --ablation-rates, what each choice of the solver is
    worth: plain ridge least squares on each layer's own output (no residual
    compensation, no ReLU-aware targets, a fixed ridge), then each choice added
    alone, then all of them (the default); zero-step accuracy and time.
(d) cascade (--part cascade): a cascade link (each rate cut from the previous rate's
    fine-tuned model) rebuilt toward its parent, against rebuilt toward the unpruned
    original (kept channels composed through both cuts); zero-step accuracy and after
    --cascade-steps steps, from the same parent at every link.
(b) seed: the seven reference torchvision models with random weights at 224 px, on
    CIFAR-10 training images resized to 224 px. A random network's BatchNorm statistics
    (mean 0, variance 1) make its activations vanish or explode with depth, so they are
    first estimated on the calibration images (as a trained network's would be). l1 at
    --seed-rate; relative logit error (held-out images) before and after, time, peak memory.

--quick: ResNet-20, l1, rates 0.3 and 0.5, fine-tune 20/60 steps, two seed models at
128 px with 128 images: a smoke run (bench/results/reconstruction_quick.json).
Results are written after every row, so a long run that is stopped keeps what it measured.
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import torch

from _common import RESULTS, cpu_name, write
from edgeprune.config import DatasetConfig, FinetuneConfig
from edgeprune.data import BatchLoader, load_dataset
from edgeprune.measure import evaluate
from edgeprune.models import create_model
from edgeprune.models.complexity import count_macs
from edgeprune.prune import prune_model
from edgeprune.recover import reconstruct
from edgeprune.train import finetune, recalibrate_bn

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SEED_MODELS = ["googlenet", "efficientnet_b0", "densenet121", "vgg16", "mobilenet_v2", "alexnet", "resnet50"]


def first_images(loader, n: int) -> torch.Tensor:
    parts, have = [], 0
    for x, _ in loader:
        parts.append(x)
        have += len(x)
        if have >= n:
            break
    return torch.cat(parts)[:n]


def steps_to_reach(curve: list, accuracy: float):
    """The first step of the curve [(step, accuracy)] at or above `accuracy`; None if never."""
    return next((s for s, a in curve if a >= accuracy), None)


def real_part(args, out: dict, save) -> None:
    data = load_dataset(DatasetConfig(root=args.data_dir))
    mean, std = IMAGENET
    test = data.test.subset(args.test_images / len(data.test), seed=1)
    test_loader = BatchLoader(test, 500, mean, std, channels_last=True)
    calibration = first_images(BatchLoader(data.train, 256, mean, std, shuffle=True, seed=0), args.images)
    recal_batches = BatchLoader(data.train, 256, mean, std, shuffle=True, augment=True, seed=0)
    train = BatchLoader(data.train, 128, mean, std, shuffle=True, augment=True, channels_last=True, seed=0)
    rows = out.setdefault("real", [])
    for name in args.models:
        unpruned = create_model(name, 10, pretrained=True, weights_dir=args.weights_dir).eval()
        base = evaluate(unpruned, test_loader)
        macs0 = count_macs(unpruned, 32)
        print(f"{name}: unpruned {base:.4f}", flush=True)
        out.setdefault("unpruned", {})[name] = base
        for algorithm in args.algorithms:
            for rate in args.rates:
                result = prune_model(unpruned, algorithm, rate, 32)
                row = {"model": name, "algorithm": algorithm, "rate": rate,
                       "mac_reduction": 1 - count_macs(result.model, 32) / macs0,
                       "accuracy_pruned": evaluate(result.model, test_loader)}
                recal = copy.deepcopy(result.model)
                row["recalibrate_seconds"] = recalibrate_bn(recal, recal_batches, 20)
                row["accuracy_recalibrated"] = evaluate(recal, test_loader)
                rebuilt = copy.deepcopy(result.model)
                report = reconstruct(unpruned, rebuilt, calibration, kept_outputs=result.kept_outputs)
                row.update(accuracy_reconstructed=evaluate(rebuilt, test_loader), reconstruct_seconds=report.seconds,
                           logit_error_pruned=report.logit_error_before,
                           logit_error_reconstructed=report.logit_error_after,
                           reconstruct_peak_mb=report.peak_memory_mb, reconstruct_skipped=report.skipped)
                both = copy.deepcopy(rebuilt)
                recalibrate_bn(both, recal_batches, 20)
                row["accuracy_reconstructed_then_recalibrated"] = evaluate(both, test_loader)
                print(f"  {algorithm} {rate}: MACs -{row['mac_reduction']:.0%} pruned {row['accuracy_pruned']:.4f} "
                      f"recal {row['accuracy_recalibrated']:.4f} rebuilt {row['accuracy_reconstructed']:.4f} "
                      f"(+recal {row['accuracy_reconstructed_then_recalibrated']:.4f}) in {report.seconds:.1f} s",
                      flush=True)
                if rate in args.finetune_rates and algorithm in args.finetune_algorithms:
                    row["finetune"] = finetune_part(args, {"recalibrated": recal, "reconstructed": rebuilt}, train,
                                                    test_loader)
                    curve = row["finetune"]["recalibrated"]["curve"]
                    step = steps_to_reach(curve, row["accuracy_reconstructed"])
                    per_step = row["finetune"]["recalibrated"]["seconds_per_step"]
                    row["steps_recalibrated_needs_to_match_reconstructed"] = step
                    row["seconds_those_steps_take"] = step * per_step if step is not None else None
                    print(f"    recalibrated model reaches the rebuilt one's zero-step accuracy after {step} steps "
                          f"({row['seconds_those_steps_take']} s) vs rebuilding {report.seconds:.1f} s", flush=True)
                rows.append(row)
                save()


def finetune_part(args, starts: dict, train, test_loader) -> dict:
    cfg = FinetuneConfig(epochs=10_000, lr=0.01, batch_size=128, warmup_epochs=0.0)
    found = {}
    for label, start in starts.items():
        found[label] = {"steps": {0: evaluate(start, test_loader)}}
        for steps in args.steps:
            model = copy.deepcopy(start)
            curve = []
            every = args.curve_every if steps == max(args.steps) else 0

            def on_step(step, total, epoch, model=model, curve=curve, every=every):
                if every and step % every == 0 and step < total:
                    curve.append((step, evaluate(model, test_loader)))

            cfg_steps = cfg.model_copy(update={"max_steps": steps})
            result = finetune(model, train, cfg_steps, seed=0, on_step=on_step)
            accuracy = evaluate(model, test_loader)
            found[label]["steps"][steps] = accuracy
            if every:
                found[label]["curve"] = [(0, found[label]["steps"][0])] + curve + [(steps, accuracy)]
                found[label]["seconds_per_step"] = result.seconds / max(result.steps, 1)
            print(f"    {label} + {steps} steps: {accuracy:.4f}", flush=True)
    return found


ABLATION = {   # label -> reconstruct() options
    "plain (own output, fixed ridge 1e-3)": {"residual": False, "relu_steps": 0, "ridge": 1e-3},
    "+ residual compensation": {"residual": True, "relu_steps": 0, "ridge": 1e-3},
    "+ ReLU-aware targets": {"residual": False, "relu_steps": 2, "ridge": 1e-3},
    "+ ridge by cross-validation": {"residual": False, "relu_steps": 0, "ridge": "auto"},
    "no ridge (0)": {"residual": True, "relu_steps": 2, "ridge": 0.0},
    "all (the default)": {},
}


def ablation_part(args, out: dict, save) -> None:
    data = load_dataset(DatasetConfig(root=args.data_dir))
    mean, std = IMAGENET
    test = data.test.subset(args.test_images / len(data.test), seed=1)
    test_loader = BatchLoader(test, 500, mean, std, channels_last=True)
    calibration = first_images(BatchLoader(data.train, 256, mean, std, shuffle=True, seed=0), args.images)
    rows = out.setdefault("ablation", [])
    for name in args.models:
        unpruned = create_model(name, 10, pretrained=True, weights_dir=args.weights_dir).eval()
        for rate in args.ablation_rates:
            result = prune_model(unpruned, "l1", rate, 32)
            for label, options in ABLATION.items():
                rebuilt = copy.deepcopy(result.model)
                report = reconstruct(unpruned, rebuilt, calibration, kept_outputs=result.kept_outputs, **options)
                row = {"model": name, "algorithm": "l1", "rate": rate, "variant": label, "options": options,
                       "accuracy_reconstructed": evaluate(rebuilt, test_loader), "seconds": report.seconds,
                       "logit_error_reconstructed": report.logit_error_after}
                rows.append(row)
                print(f"{name} l1 {rate} {label}: {row['accuracy_reconstructed']:.4f} in {report.seconds:.1f} s",
                      flush=True)
                save()


def cascade_part(args, out: dict, save) -> None:
    from edgeprune.recover import compose_kept
    data = load_dataset(DatasetConfig(root=args.data_dir))
    mean, std = IMAGENET
    test = data.test.subset(args.test_images / len(data.test), seed=1)
    test_loader = BatchLoader(test, 500, mean, std, channels_last=True)
    calibration = first_images(BatchLoader(data.train, 256, mean, std, shuffle=True, seed=0), args.images)
    train = BatchLoader(data.train, 128, mean, std, shuffle=True, augment=True, channels_last=True, seed=0)
    cfg = FinetuneConfig(epochs=10_000, lr=0.01, batch_size=128, warmup_epochs=0.0, max_steps=args.cascade_steps)
    rows = out.setdefault("cascade", [])
    for name in args.models:
        unpruned = create_model(name, 10, pretrained=True, weights_dir=args.weights_dir).eval()
        first = prune_model(unpruned, "l1", args.cascade_rates[0], 32)
        parent, parent_kept = copy.deepcopy(first.model), first.kept_outputs
        reconstruct(unpruned, parent, calibration, kept_outputs=parent_kept)
        finetune(parent, train, cfg, seed=0)
        for rate in args.cascade_rates[1:]:
            link = prune_model(parent, "l1", rate, 32, reference=unpruned)
            row = {"model": name, "rate": rate, "parent_rate": args.cascade_rates[0] if not rows or
                   rows[-1]["model"] != name else rows[-1]["rate"], "steps": args.cascade_steps,
                   "accuracy_parent": evaluate(parent, test_loader), "accuracy_pruned": evaluate(link.model, test_loader)}
            rebuilt = {}
            for toward, reference, kept in (("parent", parent, link.kept_outputs),
                                            ("unpruned", unpruned, compose_kept(parent_kept, link.kept_outputs))):
                model = copy.deepcopy(link.model)
                report = reconstruct(reference, model, calibration, kept_outputs=kept)
                row[f"toward_{toward}"] = {"accuracy_reconstructed": evaluate(model, test_loader),
                                           "seconds": report.seconds,
                                           "logit_error_reconstructed": report.logit_error_after}
                finetune(model, train, cfg, seed=0)
                row[f"toward_{toward}"]["accuracy_after_steps"] = evaluate(model, test_loader)
                rebuilt[toward] = model
            print(f"{name} cascade {row['parent_rate']} -> {rate}: pruned {row['accuracy_pruned']:.4f}; toward parent "
                  f"{row['toward_parent']['accuracy_reconstructed']:.4f} -> {row['toward_parent']['accuracy_after_steps']:.4f}"
                  f"; toward unpruned {row['toward_unpruned']['accuracy_reconstructed']:.4f} -> "
                  f"{row['toward_unpruned']['accuracy_after_steps']:.4f}", flush=True)
            rows.append(row)
            save()
            parent, parent_kept = rebuilt["parent"], compose_kept(parent_kept, link.kept_outputs)


def seed_part(args, out: dict, save) -> None:
    data = load_dataset(DatasetConfig(root=args.data_dir))
    mean, std = IMAGENET
    loader = BatchLoader(data.train, 64, mean, std, shuffle=True, seed=3, image_size=args.seed_size)
    images = first_images(loader, args.seed_images + args.seed_eval_images)
    calibration, held_out = images[:args.seed_images], images[args.seed_images:]
    rows = out.setdefault("seed", [])
    for name in args.seed_models:
        torch.manual_seed(0)
        unpruned = create_model(name, 10, pretrained=False).eval()
        recalibrate_bn(unpruned, [(calibration[i:i + 64], None) for i in range(0, len(calibration), 64)], 10_000)
        result = prune_model(unpruned, "l1", args.seed_rate, args.seed_size)
        pruned = copy.deepcopy(result.model)
        report = reconstruct(unpruned, pruned, calibration, kept_outputs=result.kept_outputs, eval_images=held_out,
                             batch_size=64)
        row = {"model": name, "rate": args.seed_rate, "input_size": args.seed_size, "images": report.images,
               "logit_error_pruned": report.logit_error_before, "logit_error_reconstructed": report.logit_error_after,
               "seconds": report.seconds, "peak_memory_mb": report.peak_memory_mb, "waves": report.waves,
               "layers_rebuilt": len(report.rebuilt), "skipped": report.skipped,
               "auto_ridges": sorted(set(report.ridges.values()))}
        rows.append(row)
        print(f"{name}: {report.summary()}, peak {report.peak_memory_mb} MB", flush=True)
        save()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--weights-dir", default="../shared/models/cifar10")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["real", "seed", "both", "ablation", "cascade"], default="both")
    ap.add_argument("--models", nargs="*", default=["resnet20", "resnet56"])
    ap.add_argument("--algorithms", nargs="*", default=["l1", "fpgm"])
    ap.add_argument("--rates", type=float, nargs="*", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    ap.add_argument("--finetune-rates", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    ap.add_argument("--finetune-algorithms", nargs="*", default=["l1"])
    ap.add_argument("--steps", type=int, nargs="*", default=[60, 300])
    ap.add_argument("--curve-every", type=int, default=20)
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--test-images", type=int, default=2000)
    ap.add_argument("--ablation-rates", type=float, nargs="*", default=[0.3, 0.5])
    ap.add_argument("--cascade-rates", type=float, nargs="*", default=[0.3, 0.5, 0.7])
    ap.add_argument("--cascade-steps", type=int, default=60)
    ap.add_argument("--seed-models", nargs="*", default=SEED_MODELS)
    ap.add_argument("--seed-size", type=int, default=224)
    ap.add_argument("--seed-images", type=int, default=1024)
    ap.add_argument("--seed-eval-images", type=int, default=128)
    ap.add_argument("--seed-rate", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.quick:
        args.models, args.algorithms, args.rates = ["resnet20"], ["l1"], [0.3, 0.5]
        args.finetune_rates, args.steps, args.curve_every = [0.3], [20, 60], 20
        args.seed_models, args.seed_size, args.seed_images, args.seed_eval_images = \
            ["mobilenet_v2", "resnet50"], 128, 128, 32
    torch.set_num_threads(args.threads)
    out = {"cpu": cpu_name(), "threads": args.threads, "settings": {k: v for k, v in vars(args).items()},
           "load_average_at_start": os.getloadavg()}
    target = args.out or str(RESULTS / ("reconstruction_quick.json" if args.quick else
                                        f"reconstruction_{args.part}.json" if args.part in ("ablation", "cascade") else
                                        "reconstruction.json"))
    t0 = time.time()

    def save():
        out["wall_seconds"] = time.time() - t0
        out["load_average_now"] = os.getloadavg()
        write("reconstruction", out, target)

    if args.part in ("real", "both"):
        real_part(args, out, save)
    if args.part in ("seed", "both"):
        seed_part(args, out, save)
    if args.part == "ablation":
        ablation_part(args, out, save)
    if args.part == "cascade":
        cascade_part(args, out, save)
    save()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
