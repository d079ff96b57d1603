"""The digits demo's U-Net, its settings varied one at a time (bench/results/field-models.md).

The demo's split, domain, schedule Exp(3, 256), training on the 100-step grid-"t" times, 2000
iterations of 64 images, and sampling with 25 bridge-solver steps on the "domain" grid, one
thread; scored with the demo's judge (class-histogram TV from uniform, mean top probability,
Frechet distance of the classifier's logits to the held-out digits) and the share of pixels at 0
and at 16. One line of JSON per sampling seed (settings, scores; seconds are process CPU time).
The loss and its weight are the model's own unless ``--value-loss`` / ``--weight`` say otherwise
(since 2026-12-08 the cross-entropy of the log-odds, every time alike; the rows of
bench/results/field-models.md measured before that date trained on the squared error with
``weight="remaining"``: ``--value-loss squared --weight remaining`` repeats them).

    python bench/field_models_digits.py [--seed 1] [--weight remaining_squared] [--output-scaling preconditioned] [--posterior-logits off]
    python bench/field_models_digits.py --seed 3 --sample-seeds 0,1,2,3,4 --start-std 4.9   # one model, five sampling seeds
    python bench/field_models_digits.py --floor 40   # the scores of a perfect sampler of the training digits
"""
import argparse, json, time
import numpy as np, torch
import omegabridge as ob
from omegabridge.demos import common, digits as dd
p = argparse.ArgumentParser()
p.add_argument("--iters", type=int, default=2000); p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=2e-3); p.add_argument("--weight", default=None, help="the Trainer's (default: the model's)")
p.add_argument("--times", default="grid"); p.add_argument("--train_steps", type=int, default=100)
p.add_argument("--train-on-sampling-grid", action="store_true", help="train at the sampling grid's times (its --steps on --grid) instead of --train_steps on grid t")
p.add_argument("--steps", type=int, default=25); p.add_argument("--grid", default="domain"); p.add_argument("--solver", default="bridge")
p.add_argument("--channels", default="32,64"); p.add_argument("--seed", type=int, default=0); p.add_argument("--b", type=float, default=256.0)
p.add_argument("--ema", type=float, default=None); p.add_argument("--spread", default="remaining"); p.add_argument("--a", type=float, default=3.0)
p.add_argument("--start-std", type=float, default=None, help="the bridges' start_std (default: the library's, 0 for digits)")
p.add_argument("--sample-seeds", default=None, help="comma-separated sampling seeds for the one trained model (default: --seed)")
p.add_argument("--save", default=None, help="write the trained (averaged) model's state_dict here")
p.add_argument("--output-scaling", default="data", choices=("preconditioned", "data"))
p.add_argument("--posterior-logits", choices=("default", "on", "off"), default="default",
               help="DriftUNet(posterior_logits=None / True / False); the default is on for digits")
p.add_argument("--floor", type=int, default=0, metavar="DRAWS",
               help="instead of training: score DRAWS sets of as many training digits drawn with replacement (a "
                    "perfect sampler of the training split) and print their spread")
p.add_argument("--value-loss", choices=("default", "squared", "cross_entropy"), default="default",
               help="DriftUNet(value_loss=None / ...): how the log-odds are trained")
p.add_argument("--dropout", type=float, default=0.0, help="DriftUNet(dropout=...) in its residual blocks")
p.add_argument("--load", default=None, help="sample this state_dict (from --save) instead of training")
a = p.parse_args(); torch.set_num_threads(1)
train, test, trl, tel = dd.load_split(0)
classifier = common.digit_classifier(train.reshape(len(train), -1), trl)
held_out_mean = dd.classifier_features(classifier, test).mean(0)


def means_part(images) -> float:
    """The means' share of the Frechet distance to the held-out digits (the rest is the covariances')."""
    return float(((dd.classifier_features(classifier, images).mean(0) - held_out_mean) ** 2).sum())


if a.floor:
    perfect = [train[np.random.default_rng(draw).integers(0, len(train), len(train))] for draw in range(a.floor)]
    draws = [dd.score_sets({"u": images}, train, test, trl, tel)[0]["u"] for images in perfect]
    means = np.array([means_part(images) for images in perfect])
    fd = np.array([draw["frechet_distance"] for draw in draws]); tv = np.array([draw["histogram_tv_from_uniform"] for draw in draws])
    print(json.dumps(dict(draws=a.floor, fd_mean=round(fd.mean(), 2), fd_sd=round(fd.std(), 2), fd_min=round(fd.min(), 2),
                          fd_max=round(fd.max(), 2), fd_means_part=round(means.mean(), 2), fd_at_most_3=round(float((fd <= 3.0).mean()), 2),
                          tv_mean=round(tv.mean(), 3), tv_max=round(tv.max(), 3), tv_at_most_006=round(float((tv <= 0.06).mean()), 2))))
    raise SystemExit(0)
domain = ob.Lattice(0, 16, shape=(1, 8, 8)); schedule = ob.schedules.Exp(a.a, a.b)
bridge = ob.Bridge(domain, schedule, steps=a.train_steps, start_std=a.start_std)
grid = ob.solvers.domain_grid(domain.segment_table(), schedule, a.steps) if a.grid == "domain" else a.grid
sampling = ob.Bridge(domain, schedule, steps=a.steps, grid=grid, start_std=a.start_std)
if a.train_on_sampling_grid:
    bridge = sampling
data = domain.flatten(torch.from_numpy(train).float())
torch.manual_seed(a.seed)
model = ob.models.for_domain(bridge, data=data, channels=tuple(int(c) for c in a.channels.split(",")),
                             output_scaling=a.output_scaling, posterior_logits={"default": None, "on": True, "off": False}[a.posterior_logits],
                             value_loss=None if a.value_loss == "default" else a.value_loss, dropout=a.dropout)
t0 = time.process_time()
if a.load:
    model.load_state_dict(torch.load(a.load))
    trained = model.eval()
else:
    tr = ob.Trainer(bridge, model, batch_size=a.batch, learning_rate=a.lr, weight=a.weight, times=a.times, seed=a.seed, ema_decay=a.ema, progress=False)
    tr.fit(data, a.iters)
    trained = tr.averaged_model
train_seconds = time.process_time() - t0
if a.save:
    torch.save(trained.state_dict(), a.save)
for sample_seed in ([a.seed] if a.sample_seeds is None else [int(v) for v in a.sample_seeds.split(",")]):
    t1 = time.process_time()
    x = sampling.sample(trained, n=len(train), seed=sample_seed, batch_size=512, progress=False, solver=a.solver, final_spread=a.spread)
    t2 = time.process_time()
    imgs = domain.unflatten(x).round().to(torch.int64).numpy()
    scores, acc = dd.score_sets({"u": imgs}, train, test, trl, tel)
    u = scores["u"]
    values = np.bincount(imgs.ravel(), minlength=17) / imgs.size
    print(json.dumps(vars(a)), json.dumps(dict(sample_seed=sample_seed, at_16=round(float(values[16]), 3), real_at_16=round(float((test == 16).mean()), 3), tv=round(u["histogram_tv_from_uniform"],3), top=round(u["mean_top_probability"],3), fd=round(u["frechet_distance"],2), fd_means_part=round(means_part(imgs), 2), classes=[round(v * len(imgs)) for v in u["class_histogram"]], zeros=round(float((imgs==0).mean()),3), real_zeros=round(float((test==0).mean()),3), train_s=round(train_seconds), sample_s=round(t2-t1))), flush=True)
