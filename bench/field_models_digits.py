"""The digits demo's U-Net, its settings varied one at a time (bench/results/field-models.md).

The demo's split, domain, schedule Exp(3, 256), training on the 100-step grid-"t" times, 2000
iterations of 64 images, and sampling with 25 bridge-solver steps on the "domain" grid, one
thread; scored with the demo's judge (class-histogram TV from uniform, mean top probability,
Frechet distance of the classifier's logits to the held-out digits) and the share of pixels at 0
and at 16. One line of JSON (settings, scores; seconds are process CPU time).

    python bench/field_models_digits.py [--seed 1] [--weight remaining_squared] [--output-scaling preconditioned] [--posterior-logits off]
"""
import argparse, json, time
import numpy as np, torch
import omegabridge as ob
from omegabridge.demos import digits as dd
p = argparse.ArgumentParser()
p.add_argument("--iters", type=int, default=2000); p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=2e-3); p.add_argument("--weight", default="remaining")
p.add_argument("--times", default="grid"); p.add_argument("--train_steps", type=int, default=100)
p.add_argument("--train-on-sampling-grid", action="store_true", help="train at the sampling grid's times (its --steps on --grid) instead of --train_steps on grid t")
p.add_argument("--steps", type=int, default=25); p.add_argument("--grid", default="domain"); p.add_argument("--solver", default="bridge")
p.add_argument("--channels", default="32,64"); p.add_argument("--seed", type=int, default=0); p.add_argument("--b", type=float, default=256.0)
p.add_argument("--ema", type=float, default=None); p.add_argument("--spread", default="remaining"); p.add_argument("--a", type=float, default=3.0)
p.add_argument("--output-scaling", default="data", choices=("preconditioned", "data"))
p.add_argument("--posterior-logits", choices=("default", "on", "off"), default="default",
               help="DriftUNet(posterior_logits=None / True / False); the default is on for digits")
a = p.parse_args(); torch.set_num_threads(1)
train, test, trl, tel = dd.load_split(0)
domain = ob.Lattice(0, 16, shape=(1, 8, 8)); schedule = ob.schedules.Exp(a.a, a.b)
bridge = ob.Bridge(domain, schedule, steps=a.train_steps)
grid = ob.solvers.domain_grid(domain.segment_table(), schedule, a.steps) if a.grid == "domain" else a.grid
sampling = ob.Bridge(domain, schedule, steps=a.steps, grid=grid)
if a.train_on_sampling_grid:
    bridge = sampling
data = domain.flatten(torch.from_numpy(train).float())
torch.manual_seed(a.seed)
model = ob.models.for_domain(bridge, data=data, channels=tuple(int(c) for c in a.channels.split(",")),
                             output_scaling=a.output_scaling, posterior_logits={"default": None, "on": True, "off": False}[a.posterior_logits])
t0 = time.process_time()
tr = ob.Trainer(bridge, model, batch_size=a.batch, learning_rate=a.lr, weight=a.weight, times=a.times, seed=a.seed, ema_decay=a.ema, progress=False)
tr.fit(data, a.iters); t1 = time.process_time()
x = sampling.sample(tr.averaged_model, n=len(train), seed=a.seed, batch_size=512, progress=False, solver=a.solver, final_spread=a.spread)
t2 = time.process_time()
imgs = domain.unflatten(x).round().to(torch.int64).numpy()
scores, acc = dd.score_sets({"u": imgs}, train, test, trl, tel)
u = scores["u"]
values = np.bincount(imgs.ravel(), minlength=17) / imgs.size
print(json.dumps(vars(a)), json.dumps(dict(at_16=round(float(values[16]), 3), real_at_16=round(float((test == 16).mean()), 3), tv=round(u["histogram_tv_from_uniform"],3), top=round(u["mean_top_probability"],3), fd=round(u["frechet_distance"],2), zeros=round(float((imgs==0).mean()),3), real_zeros=round(float((test==0).mean()),3), train_s=round(t1-t0), sample_s=round(t2-t1))), flush=True)
