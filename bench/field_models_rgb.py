"""RGB 8-bit patches as a field: what the U-Net's training and output settings do (bench/results/field-models.md).

Patches of --size x --size pixels cut at seeded random places from scikit-learn's two sample
photographs (``load_sample_images``: china, flower; 5000 for training, 1000 held out, another
seed), as ``Lattice(0, 255, step=1, shape=(3, S, S))``; ``ob.Bridge(domain, steps=100)`` with the
default schedule, ``ob.models.for_domain`` (a ``DriftUNet``), ``ob.Trainer`` for --iters
iterations; --n samples scored against the held-out patches: pixel-histogram TV over 16 bins of
16 levels, and the correlation of horizontally neighbouring pixels. One line of JSON (the
settings, then the scores; seconds are process CPU time).

    python bench/field_models_rgb.py --size 16 --iters 300 [--weight remaining] [--output-scaling preconditioned] [--posterior-logits on]
"""
import sys, time, json, argparse
import numpy as np, torch
import omegabridge as ob
p = argparse.ArgumentParser()
p.add_argument("--iters", type=int, default=300)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--weight", default=None, help="the Trainer's loss weight (default: the model's own, Trainer(weight=None))")
p.add_argument("--times", default="grid")
p.add_argument("--steps", type=int, default=100)
p.add_argument("--solver", default=None)
p.add_argument("--grid", default="t")
p.add_argument("--size", type=int, default=8)
p.add_argument("--channels", default="32,64")
p.add_argument("--ema", type=float, default=None)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--schedule", default=None)
p.add_argument("--spread", default="remaining")
p.add_argument("--output-scaling", default="data", choices=("preconditioned", "data"))
p.add_argument("--posterior-logits", choices=("default", "on", "off"), default="default",
               help="DriftUNet(posterior_logits=None / True / False); the default is off for 8-bit fields")
p.add_argument("--n", type=int, default=400)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
from sklearn.datasets import load_sample_images
imgs = [np.asarray(i) for i in load_sample_images().images]
rng = np.random.default_rng(0)
def patches(n, rng):
    out = []
    for _ in range(n):
        im = imgs[rng.integers(2)]
        r = rng.integers(0, im.shape[0]-a.size); c = rng.integers(0, im.shape[1]-a.size)
        out.append(im[r:r+a.size, c:c+a.size].transpose(2,0,1))
    return np.stack(out).astype(np.int64)
train = patches(5000, rng); test = patches(1000, np.random.default_rng(1))
domain = ob.Lattice(0, 255, step=1, shape=(3, a.size, a.size))
sched = eval("ob.schedules." + a.schedule) if a.schedule else None
bridge = ob.Bridge(domain, sched, steps=a.steps, grid=a.grid)
data = domain.flatten(torch.from_numpy(train).float())
torch.manual_seed(a.seed)
model = ob.models.for_domain(bridge, data=data, channels=tuple(int(c) for c in a.channels.split(",")),
                             output_scaling=a.output_scaling, posterior_logits={"default": None, "on": True, "off": False}[a.posterior_logits])
t0 = time.process_time()
tr = ob.Trainer(bridge, model, batch_size=a.batch, learning_rate=a.lr, weight=a.weight, times=a.times, seed=a.seed, ema_decay=a.ema, progress=False)
losses = tr.fit(data, a.iters)
t1 = time.process_time()
x = bridge.sample(tr.averaged_model, n=a.n, seed=a.seed, batch_size=200, progress=False, solver=a.solver, final_spread=a.spread)
t2 = time.process_time()
s = domain.unflatten(x).round().numpy()
def hist(v): return np.histogram(v, bins=16, range=(0,256))[0] / v.size
def ncorr(v):
    v = v.astype(float); a_ = v[..., :, :-1].ravel(); b_ = v[..., :, 1:].ravel(); return np.corrcoef(a_, b_)[0,1]
tv = 0.5*np.abs(hist(s)-hist(test)).sum()
res = dict(tv=round(tv,3), corr=round(ncorr(s),3), real_corr=round(ncorr(test),3), below16=round((s<16).mean(),3), real_below16=round((test<16).mean(),3), above224=round((s>=224).mean(),3), real_above224=round((test>=224).mean(),3), train_s=round(t1-t0), sample_s=round(t2-t1), loss=float(np.mean(losses[-30:])))
print(json.dumps({**vars(a), "weight": tr.weight}), json.dumps(res), flush=True)
