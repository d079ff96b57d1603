"""The segments demo's U-Net sampled several ways from one training run (bench/results/field-models.md).

Trains the demo's model (procedural 32x32 scenes, 6 classes, `Categorical(6, shape=(32, 32))`,
50-step grid-"t" bridge, DriftUNet (32, 64), 600 iterations of 32 maps, learning rate 2e-3, the
Trainer's loss weight (``--weight``, default "remaining"), grid times; one thread), or loads it from ``--model`` when that
file exists (it is written there after training otherwise), then samples 400 maps with each
``--variants`` entry, solver:grid:final_spread[:steps], and scores them with the demo's judge
(class-frequency TV, co-occurrence TV, connected regions per map; real held-out maps: 4.7), with
the regions of at most two pixels per map (stray pixels) beside them. One line of JSON per variant;
``--save DIR`` keeps each variant's maps as .npy.

    python bench/field_models_segments.py --model /tmp/segments-0.pt --variants euler:t:remaining,euler:t:remaining:200
"""
import argparse, json, os, time

import numpy as np
import torch

import omegabridge as ob
from omegabridge.demos import segments as demo
from omegabridge.fields import datasets
from omegabridge.fields.metrics import component_counts

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True, help="state_dict file: loaded if it exists, written after training if not")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--iterations", type=int, default=600)
parser.add_argument("--weight", default="remaining", help="the Trainer's loss weight (training only)")
parser.add_argument("--output-scaling", default="data", choices=("data", "preconditioned"))
parser.add_argument("--posterior-logits", choices=("default", "on", "off"), default="default",
                    help="DriftUNet(posterior_logits=None / True / False); the default is on for a categorical map")
parser.add_argument("--value-loss", choices=("default", "squared", "cross_entropy"), default="default",
                    help="DriftUNet(value_loss=None / ...): how the log-odds are trained")
parser.add_argument("--variants", default="euler:t:remaining,bridge:domain:remaining")
parser.add_argument("--n", type=int, default=400)
parser.add_argument("--save", default=None, help="folder for each variant's sampled maps (.npy)")
args = parser.parse_args()
torch.set_num_threads(1)

classes = len(datasets.SCENE_CLASSES)
maps = datasets.segmentation_scenes(2000 + args.n, size=32, seed=args.seed)
train, test = maps[:2000], maps[2000:]
domain = ob.Categorical(classes, shape=(32, 32))
bridge = ob.Bridge(domain, steps=50)
data = domain.flatten(torch.nn.functional.one_hot(torch.from_numpy(train), classes).float())
torch.manual_seed(args.seed)
model = ob.models.for_domain(bridge, data=data, channels=(32, 64), output_scaling=args.output_scaling,
                              posterior_logits={"default": None, "on": True, "off": False}[args.posterior_logits],
                              value_loss=None if args.value_loss == "default" else args.value_loss)
if os.path.exists(args.model):
    model.load_state_dict(torch.load(args.model))
else:
    start = time.perf_counter()
    ob.Trainer(bridge, model, batch_size=32, learning_rate=2e-3, weight=args.weight, times="grid", seed=args.seed,
               progress=False).fit(data, args.iterations)
    torch.save(model.state_dict(), args.model)
    print(json.dumps({"trained_s": round(time.perf_counter() - start)}), flush=True)
model.eval()


def small_regions(maps: np.ndarray, most: int = 2) -> float:
    """Mean number per map of 4-connected single-class regions of at most ``most`` pixels."""
    return float(component_counts(maps, largest=most).mean())


print(json.dumps({"variant": "held-out real", "small_regions": small_regions(test)}), flush=True)
for variant in args.variants.split(","):
    solver, grid_name, spread, *steps = variant.split(":")
    steps, grid = int(steps[0]) if steps else 50, grid_name
    if grid == "domain":
        grid = ob.solvers.domain_grid(domain.segment_table(), bridge.schedule, steps)
    sampling = ob.Bridge(domain, bridge.schedule, steps=steps, grid=grid)
    start = time.perf_counter()
    with torch.no_grad():
        x = sampling.sample(model, n=args.n, seed=args.seed, batch_size=200, progress=False, solver=solver,
                            final_spread=spread)
    assert bool(domain.contains(x).all())
    samples = domain.unflatten(x).argmax(dim=-1).numpy()
    score = demo.score_maps(samples, test, classes)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        np.save(os.path.join(args.save, variant.replace(":", "_") + ".npy"), samples.astype(np.uint8))
    print(json.dumps({"variant": variant, "grid": grid_name, **{k: round(float(v), 4) for k, v in score.items()},
                      "small_regions": round(small_regions(samples), 2),
                      "sample_s": round(time.perf_counter() - start)}), flush=True)
