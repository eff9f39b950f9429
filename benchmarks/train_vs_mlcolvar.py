"""cvlearn DeepTICA against mlcolvar DeepTICA: training time per epoch, to convergence, and test VAMP-2.

What is measured
----------------
Data: ``cl.systems.HiddenDoubleWell(dim=--features, barrier=10 kJ/mol)`` (a 1-D double well, 4 kT
at 300 K, hidden behind a random rotation among harmonic noise directions), simulated with
``cl.Langevin(timestep=0.02 ps, friction=1/ps, n_walkers=--walkers, seed=0)``, one frame every 5
steps (0.1 ps), ``--frames`` frames per walker (default 25 walkers x 5000 frames x 50 features =
125,000 frames, float64). The first 80% of every walker is the fit set (100,000 frames), the last
20% the test set that neither library sees while training.

Both libraries train the same network on the same pairs:

* features -> standardization (mean/std of the fit set) -> MLP [features, *--layers, --components]
  (tanh between layers, linear output) -> TICA eigenvalues of the outputs at lag ``--lag`` frames;
  loss = -(sum of squared eigenvalues) (VAMP-2 without its constant 1); C0 regularized with
  epsilon = 1e-6; Adam, lr 1e-3; float32.
* The fit set is cut by cvlearn's block split (10 contiguous blocks per walker, 20% of the blocks
  to validation, seed 0); the very same (x_t, x_t+lag) pairs are handed to mlcolvar as a
  DictDataset ('data', 'data_lag', 'weights', 'weights_lag') with a sequential split, so both
  train and validate on identical pairs. (mlcolvar's own default would be a random frame split.)
* cvlearn: ``cl.DeepTICA(...)`` in this process. mlcolvar 1.3.1: ``mlcolvar.cvs.DeepTICA`` with its
  default loss (ReduceEigenvaluesLoss, mode "sum2"), input Normalization set to the same mean/std,
  trained by ``lightning.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
  enable_progress_bar=False, enable_model_summary=False)`` in ``benchmarks/_mlcolvar_worker.py``,
  run by the interpreter of a separate virtual environment (``benchmarks/.venv-mlcolvar``, created
  on first use: mlcolvar pins scikit-learn<1.8 and pydantic<2). Its DictLoader keeps its default
  ``shuffle=True`` (it permutes the full batch every epoch).
* Remaining differences, by design of each library: cvlearn estimates the covariances with the
  reversible (symmetrized) estimator, C00 from x_t and x_t+lag and the mean of both; mlcolvar
  takes C0 and the mean from x_t only and symmetrizes C_lag. cvlearn standardizes the data once
  before training; mlcolvar normalizes inside every forward pass. Initial weights differ (each
  library seeds its own).
* Same ``torch.set_num_threads(--threads)`` in both processes (default 1: the machine is shared).

These runs, each library in turn (cvlearn, then mlcolvar), in one invocation (same machine, same load):

1. Fixed epochs: ``--epochs`` full-batch epochs (default 100; 0 skips this run), early stopping off
   (patience = epochs): one Adam step per epoch, so this isolates the cost of an epoch.
2. ``--small-epochs`` epochs (default 10) with batches of ``--small-batch`` pairs (default 512; several
   sizes give one run each, e.g. ``--small-batch 512 4096``), no early stopping: many optimizer steps
   per epoch, so per-step overheads show.
3. To convergence, full batch: early stopping on the validation loss with ``--patience`` (default
   30) and at most ``--max-epochs`` epochs.
4. To convergence with minibatches of ``--minibatch`` pairs (default 4096), same early stopping.

Minibatches are reshuffled every epoch in both; validation is one batch in both. In every run both
libraries return the weights of the epoch with the lowest validation loss (cvlearn does it; for
mlcolvar, a callback keeps the best state dict in memory, next to Lightning's EarlyStopping).

ms/epoch is the median of the intervals between the ends of consecutive epochs (training step(s) +
validation + bookkeeping), by the wall clock and by the process's CPU time (``time.process_time``;
steadier than the wall clock when other processes compete for the cores). Total is the time from
numpy arrays in memory to the trained model (cvlearn: ``fit``; mlcolvar: tensors,
DictDataset/DictModule, model, Trainer and ``trainer.fit``); imports and torch's first-call costs
(Adam's first construction imports ``torch._dynamo``, seconds) are paid before the clocks start, in
both processes.

Score: each trained network's outputs on the test trajectories, then VAMP-2 = 1 + sum of squared
TICA eigenvalues of those outputs at the same lag (``cl.TICA(lagtime, scaling=None)``; invariant
to any invertible linear map of the outputs, so heads and output TICA blocks do not matter). Linear
TICA with the same number of components on the raw features is listed for reference.

Run from the repository root::

    python benchmarks/train_vs_mlcolvar.py              # full size (~4 min on 2 cores), appends to RESULTS.md
    python benchmarks/train_vs_mlcolvar.py --quick --no-append
    python benchmarks/train_vs_mlcolvar.py --epochs 0 --small-batch 512 4096 --no-convergence --no-append

The first run creates benchmarks/.venv-mlcolvar (torch==2.13.0 first, then mlcolvar==1.3.1 under
a constraint that keeps torch at 2.13.0; network access to PyPI needed once).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import cvlearn as cl
from cvlearn.learners._training import split_blocks

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.train_vs_mlcolvar
    from benchmarks._common import append_section, markdown_table

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-mlcolvar"
WORKER = HERE / "_mlcolvar_worker.py"
TORCH_PIN = "torch==2.13.0"
MLCOLVAR_PIN = "mlcolvar==1.3.1"


# ---------------------------------------------------------------------------------------------
# the mlcolvar environment
# ---------------------------------------------------------------------------------------------
def venv_python():
    return VENV / "bin" / "python"


def ensure_venv():
    """Create (or reuse) the mlcolvar virtual environment; return its interpreter."""
    py = venv_python()
    check = [str(py), "-c", "import mlcolvar, lightning, torch; "
             "assert mlcolvar.__version__ == '1.3.1', mlcolvar.__version__; "
             "assert torch.__version__.startswith('2.13.0'), torch.__version__"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    print(f"creating {VENV} (torch 2.13.0, then {MLCOLVAR_PIN}) ...", flush=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # Keep the environment out of git whatever the repository's .gitignore says (Python >= 3.13's venv
    # writes the same file itself).
    (VENV / ".gitignore").write_text("# created by benchmarks/train_vs_mlcolvar.py\n*\n")
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH_PIN], check=True)  # torch first: the local CPU wheel, never a CUDA build
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(TORCH_PIN + "\n")
        constraints = fh.name
    try:
        subprocess.run([*pip, "-c", constraints, MLCOLVAR_PIN], check=True)
    finally:
        os.unlink(constraints)
    subprocess.run(check, check=True)
    return py


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def make_data(walkers, frames, features, seed=0):
    """List of ``walkers`` float64 arrays (frames x features), cached in the temp folder."""
    key = f"hdw_b10_d{features}_w{walkers}_f{frames}_s{seed}"
    path = Path(tempfile.gettempdir()) / f"cvlearn_bench_mlcolvar_{key}.npz"
    if path.exists():
        with np.load(path) as d:
            return [d[f"x{i}"] for i in range(walkers)], 0.0, True
    t0 = time.perf_counter()
    system = cl.systems.HiddenDoubleWell(dim=features, barrier=10.0)
    traj = cl.Langevin(system, timestep=0.02, friction=1.0, n_walkers=walkers, seed=seed).run(frames * 5, stride=5)
    data = [np.ascontiguousarray(p.reshape(len(p), -1)) for p in traj.per_walker()]
    elapsed = time.perf_counter() - t0
    tmp = path.with_suffix(f".{os.getpid()}.npz")
    np.savez(tmp, **{f"x{i}": x for i, x in enumerate(data)})
    os.replace(tmp, path)
    return data, elapsed, False


def split_fit_test(data, test_fraction):
    cut = [int(round(len(x) * (1 - test_fraction))) for x in data]
    return [x[:c] for x, c in zip(data, cut)], [x[c:] for x, c in zip(data, cut)]


def vamp2(z_list, lag):
    return cl.TICA(lagtime=lag, scaling=None).fit(z_list).vamp2_score_


# ---------------------------------------------------------------------------------------------
# the two trainers
# ---------------------------------------------------------------------------------------------
class _TimedDeepTICA(cl.DeepTICA):
    """cl.DeepTICA that stamps the clocks after each validation loss (= the end of an epoch)."""

    def _loss(self, cv, extra, batch):
        out = super()._loss(cv, extra, batch)
        if not cv.net.training:
            self.stamps_.append((time.perf_counter(), time.process_time()))
        return out


def warm_up():
    """Pay torch's lazy imports and first-call costs before any clock starts (done in both processes)."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # imports torch._dynamo (seconds)
    torch.linalg.eigh(torch.linalg.cholesky(torch.eye(2)))


def summarize(wall, cpu, t0, c0, t1, c1, best_epoch, valid_loss, z_test, lag):
    """Per-run numbers from the epoch-end clocks (wall, cpu) and the start/end of the timed part."""
    wall, cpu = np.asarray(wall), np.asarray(cpu)
    nan = float("nan")
    return {"epochs": len(wall), "epoch_s": float(np.median(np.diff(wall))) if len(wall) > 1 else nan,
            "epoch_cpu": float(np.median(np.diff(cpu))) if len(cpu) > 1 else nan,
            "total_s": t1 - t0, "total_cpu": c1 - c0, "best_epoch": int(best_epoch),
            "to_best_s": float(wall[best_epoch] - t0), "best_valid_loss": float(valid_loss),
            "test_vamp2": vamp2(z_test, lag)}


def run_cvlearn(fit, test, cfg, max_epochs, patience, batch_size):
    est = _TimedDeepTICA(lagtime=cfg.lag, layers=list(cfg.layers), n_components=cfg.components, activation="tanh",
                         score="vamp2", epsilon=1e-6, max_epochs=max_epochs, patience=patience, lr=cfg.lr,
                         batch_size=batch_size or None, valid_fraction=0.2, n_blocks=10, seed=0)
    est.stamps_ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when every epoch runs: expected here
        t0, c0 = time.perf_counter(), time.process_time()
        est.fit(fit)
        t1, c1 = time.perf_counter(), time.process_time()
    wall, cpu = zip(*est.stamps_)
    return summarize(wall, cpu, t0, c0, t1, c1, est.best_epoch_, est.history_["valid"][est.best_epoch_],
                     est.transform(test), cfg.lag)


def worker_input(fit, test, cfg, path):
    """Write the exact train/valid pairs of cvlearn's block split (raw features) and the settings."""
    mean = np.concatenate(fit).mean(0)
    std = np.concatenate(fit).std(0)
    weights = [np.ones(len(x)) for x in fit]
    train, valid = split_blocks(fit, weights, cfg.lag, 0.2, 10, 0, torch.float64, "cpu")
    arrays = {f"test_{i}": x for i, x in enumerate(test)}
    for name, b in (("train", train), ("valid", valid)):
        arrays.update({f"{name}_x": b.x.numpy(), f"{name}_y": b.y.numpy(), f"{name}_w": b.w.numpy()})
    np.savez(path, mean=mean, std=std, layers=np.array([fit[0].shape[1], *cfg.layers, cfg.components]),
             lr=cfg.lr, batch_size=0, epsilon=1e-6, threads=cfg.threads, seed=0,
             activation="tanh", max_epochs=0, patience=0, **arrays)
    return len(train), len(valid)


def run_mlcolvar(py, base_input, test, cfg, max_epochs, patience, batch_size, workdir):
    inp, out = Path(workdir) / "in.npz", Path(workdir) / "out.npz"
    with np.load(base_input) as d:
        settings = dict(d)
    settings.update(max_epochs=max_epochs, patience=patience, batch_size=batch_size)
    np.savez(inp, **settings)
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg.threads), MKL_NUM_THREADS=str(cfg.threads))
    proc = subprocess.run([str(py), str(WORKER), str(inp), str(out)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise RuntimeError(f"mlcolvar worker failed with exit code {proc.returncode}")
    with np.load(out) as r:
        best = int(r["best_epoch"])
        res = summarize(r["epoch_end"], r["epoch_end_cpu"], float(r["t_start"]), float(r["c_start"]),
                        float(r["t_end"]), float(r["c_end"]), best, r["valid_loss"][best],
                        [r[f"z_test_{i}"] for i in range(len(test))], cfg.lag)
        res["versions"] = str(r["versions"])
    return res


# ---------------------------------------------------------------------------------------------
# where cvlearn's epoch goes
# ---------------------------------------------------------------------------------------------
def profile_cvlearn_epoch(fit, cfg, repeats=10):
    """Median seconds of the parts of one full-batch cvlearn DeepTICA epoch (same code path as fit)."""
    from cvlearn.learners._neural import NeuralCV, _stacked_tica_eigenvalues

    mean, std = np.concatenate(fit).mean(0), np.concatenate(fit).std(0)
    scaled = [(x - mean) / std for x in fit]
    train, valid = split_blocks(scaled, [np.ones(len(x)) for x in fit], cfg.lag, 0.2, 10, 0, torch.float32, "cpu")
    torch.manual_seed(0)
    cv = NeuralCV(fit[0].shape[1], cfg.layers, cfg.components, "tanh", head=True)
    opt = torch.optim.Adam(cv.net.parameters(), lr=cfg.lr, fused=True)
    parts = {k: [] for k in ("forward (each frame once)", "TICA eigenvalues + loss", "backward", "Adam step",
                             "validation loss (no grad)")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        z = train.stacked_outputs(cv.net)
        t1 = time.perf_counter()
        loss = -(_stacked_tica_eigenvalues(z, train.w, 1e-6) ** 2).sum()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        float(loss.detach())
        t4 = time.perf_counter()
        with torch.no_grad():
            float(-(_stacked_tica_eigenvalues(valid.stacked_outputs(cv.net), valid.w, 1e-6) ** 2).sum())
        t5 = time.perf_counter()
        for k, a, b in zip(parts, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
            parts[k].append(b - a)
    return {k: statistics.median(v) for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--walkers", type=int, default=25, help="trajectories (default 25)")
    parser.add_argument("--frames", type=int, default=5000, help="frames per trajectory (default 5000)")
    parser.add_argument("--features", type=int, default=50, help="features = dimensions (default 50)")
    parser.add_argument("--lag", type=int, default=25, help="lag in frames (default 25 = 2.5 ps)")
    parser.add_argument("--layers", type=int, nargs="+", default=[64, 32], help="hidden layers (default 64 32)")
    parser.add_argument("--components", type=int, default=2, help="network outputs (default 2)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=100,
                        help="epochs of the fixed-epoch full-batch run (default 100; 0 skips it)")
    parser.add_argument("--patience", type=int, default=30, help="early-stopping patience (default 30)")
    parser.add_argument("--max-epochs", type=int, default=1000, help="cap of the convergence runs (default 1000)")
    parser.add_argument("--minibatch", type=int, default=4096,
                        help="batch size of the minibatch convergence run (default 4096; 0 skips it)")
    parser.add_argument("--small-batch", type=int, nargs="+", default=[512],
                        help="batch size(s) of short fixed-epoch runs that expose per-step costs, one run each "
                             "(default 512; 0 skips)")
    parser.add_argument("--small-epochs", type=int, default=10, help="epochs of that run (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in both (default 1)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="tail of each walker held out")
    parser.add_argument("--no-convergence", action="store_true", help="only the fixed-epoch run")
    parser.add_argument("--profile", action="store_true", help="also time the parts of one cvlearn epoch")
    parser.add_argument("--quick", action="store_true", help="small data and few epochs (a smoke test)")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    cfg = parser.parse_args()
    if cfg.quick:
        cfg.walkers, cfg.frames, cfg.epochs, cfg.max_epochs, cfg.patience, cfg.minibatch = 8, 1500, 20, 60, 10, 1024
        cfg.small_batch, cfg.small_epochs = [min(b, 256) for b in cfg.small_batch], min(cfg.small_epochs, 3)
    runs = [(f"{cfg.epochs} epochs, full batch, no early stopping", cfg.epochs, cfg.epochs, 0)] if cfg.epochs else []
    runs += [(f"{cfg.small_epochs} epochs, batch {b}, no early stopping", cfg.small_epochs, cfg.small_epochs, b)
             for b in cfg.small_batch if b]
    if not cfg.no_convergence:
        runs.append((f"to convergence, full batch (patience {cfg.patience})", cfg.max_epochs, cfg.patience, 0))
        if cfg.minibatch:
            runs.append((f"to convergence, batch {cfg.minibatch} (patience {cfg.patience})", cfg.max_epochs,
                         cfg.patience, cfg.minibatch))
    if not runs:
        parser.error("nothing to run: --epochs 0, --small-batch 0 and --no-convergence together skip every run")
    torch.set_num_threads(cfg.threads)
    py = ensure_venv()
    warm_up()

    data, gen_s, cached = make_data(cfg.walkers, cfg.frames, cfg.features)
    fit, test = split_fit_test(data, cfg.test_fraction)
    n_fit, n_test = sum(map(len, fit)), sum(map(len, test))
    print(f"data: {cfg.walkers} walkers x {cfg.frames} frames x {cfg.features} features "
          f"({'cached' if cached else f'simulated in {gen_s:.0f} s'}); fit {n_fit} frames, test {n_test} frames",
          flush=True)
    t_tica = time.perf_counter()
    tica = cl.TICA(lagtime=cfg.lag, n_components=cfg.components, scaling=None).fit(fit)
    tica_score, t_tica = vamp2(tica.transform(test), cfg.lag), time.perf_counter() - t_tica

    results = {}
    with tempfile.TemporaryDirectory(prefix="cvlearn_mlcolvar_") as work:
        base = Path(work) / "base.npz"
        n_train, n_valid = worker_input(fit, test, cfg, base)
        print(f"pairs at lag {cfg.lag}: {n_train} train, {n_valid} valid; threads {cfg.threads}", flush=True)
        for label, max_epochs, patience, batch_size in runs:
            for lib in ("cvlearn", "mlcolvar"):
                print(f"[{label}] {lib} ...", flush=True)
                if lib == "cvlearn":
                    r = run_cvlearn(fit, test, cfg, max_epochs, patience, batch_size)
                else:
                    r = run_mlcolvar(py, base, test, cfg, max_epochs, patience, batch_size, work)
                results[label, lib] = r
                print(f"    {r['epochs']} epochs, {r['epoch_s'] * 1e3:.0f} ms/epoch "
                      f"({r['epoch_cpu'] * 1e3:.0f} ms CPU), total {r['total_s']:.1f} s ({r['total_cpu']:.1f} s CPU), "
                      f"best epoch {r['best_epoch']}, "
                      f"test VAMP-2 {r['test_vamp2']:.4f}", flush=True)
    profile = profile_cvlearn_epoch(fit, cfg) if cfg.profile else None

    header = ["run", "library", "epochs", "ms/epoch wall (CPU)", "total s wall (CPU)", "best epoch",
              "s to best epoch", "own best valid loss", "test VAMP-2", "mlcolvar / cvlearn: per epoch, total (CPU)"]
    rows = []
    for label, _, _, _ in runs:
        ours, ref = results[label, "cvlearn"], results[label, "mlcolvar"]
        for lib, r in (("cvlearn", ours), ("mlcolvar 1.3.1", ref)):
            ratio = "" if r is ours else (
                f"{ref['epoch_s'] / ours['epoch_s']:.2f}x ({ref['epoch_cpu'] / ours['epoch_cpu']:.2f}x), "
                f"{ref['total_s'] / ours['total_s']:.2f}x ({ref['total_cpu'] / ours['total_cpu']:.2f}x)")
            rows.append([label, lib, r["epochs"], f"{r['epoch_s'] * 1e3:.0f} ({r['epoch_cpu'] * 1e3:.0f})",
                         f"{r['total_s']:.1f} ({r['total_cpu']:.1f})", r["best_epoch"], f"{r['to_best_s']:.1f}",
                         f"{r['best_valid_loss']:.4f}", f"{r['test_vamp2']:.4f}", ratio])
    rows.append(["reference", f"linear TICA, {cfg.components} components", "-", "-", f"{t_tica:.1f}", "-", "-", "-",
                 f"{tica_score:.4f}", ""])
    table = markdown_table(header, rows)
    print()
    print(table)
    prof_text = ""
    if profile:
        tot = sum(profile.values())
        prof_text = ("\n\nWhere one full-batch cvlearn epoch goes (median of 10, same data and network, "
                     f"{tot * 1e3:.0f} ms in all): " + "; ".join(
                         f"{k} {v * 1e3:.0f} ms ({100 * v / tot:.0f}%)" for k, v in profile.items()) + ".")
        print(prof_text.strip())

    if not cfg.no_append:
        ref_versions = results[runs[0][0], "mlcolvar"]["versions"]
        body = (
            f"HiddenDoubleWell(dim={cfg.features}, barrier=10 kJ/mol, 300 K), Langevin dt 0.02 ps, friction 1/ps, "
            f"{cfg.walkers} walkers x {cfg.frames} frames (every 0.1 ps), {cfg.features} features. Fit set: the first "
            f"{100 * (1 - cfg.test_fraction):.0f}% of each walker ({n_fit:,} frames); cvlearn's block split gives "
            f"{n_train:,} train and {n_valid:,} validation pairs at lag {cfg.lag}, handed to both libraries. Test "
            f"set: the last {100 * cfg.test_fraction:.0f}% ({n_test:,} frames), seen by neither. Network "
            f"[{cfg.features}, {', '.join(map(str, cfg.layers))}, {cfg.components}], tanh, float32, loss "
            f"-sum(TICA eigenvalues^2), epsilon 1e-6, Adam lr {cfg.lr:g}, validation in one batch, "
            f"{cfg.threads} torch thread(s) in both processes. ms/epoch: median interval between the ends of "
            "consecutive epochs (training step(s) + validation), wall clock and process CPU time (CPU time is "
            "the steadier number on a loaded machine); total: numpy arrays in memory -> trained model, imports "
            "and torch's first-call costs excluded in both. Early stopping restores the best weights in both. "
            "Test VAMP-2: 1 + sum of squared TICA eigenvalues of the network outputs on the test set at the same "
            "lag. 'Own best valid loss' is each library's own loss (cvlearn: reversible covariance estimator; "
            "mlcolvar: C0 and mean from x_t only), so those two are not exactly comparable. "
            f"({ref_versions}; its DictLoader reshuffles every epoch, its default.)\n\n" + table + prof_text)
        append_section("DeepTICA training: cvlearn vs mlcolvar (train_vs_mlcolvar.py)", body)


if __name__ == "__main__":
    main()
