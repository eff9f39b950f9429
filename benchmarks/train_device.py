"""Training the neural learners on CPU vs GPU: ms per epoch, same data, same networks.

What is measured
----------------
Data: ``cl.systems.HiddenDoubleWell(dim=--features)`` (a double well hidden among harmonic
directions by a random rotation), simulated by ``cl.Langevin(timestep=0.02 ps, friction=1/ps,
n_walkers=--walkers, seed=0)`` on the fastest device, one frame every 5 steps, ``--frames`` frames
per walker (default 200 walkers x 2500 frames x 50 features = 500,000 frames), float32 for training.

For each device (CPU; CUDA when available) and each learner, one fit with early stopping off
(``patience = max_epochs``), so every epoch is timed:

* ``DeepTICA(lagtime=5, layers=--layers, n_components=2)``, full batch (one Adam step per epoch)
  for ``--epochs`` epochs, and minibatches of ``--batch`` pairs for ``--mb-epochs`` epochs;
* ``AutoEncoder(layers=--layers, n_components=2)``, minibatches of ``--batch`` frames,
  ``--mb-epochs`` epochs.

Reported per case: seconds per epoch (total fit time / epochs, including validation every epoch),
the ratio CPU / CUDA, and the best validation loss (a check that both devices learn the same
thing: DeepTICA's is minus the sum of squared TICA eigenvalues of its outputs, at most -1 per
slow component; the autoencoder's the mean squared reconstruction error of standardized
features). CPU threads: torch's default (``--threads`` sets it).

Run from the repository root::

    python benchmarks/train_device.py            # appends to RESULTS.md
    python benchmarks/train_device.py --frames 200 --epochs 3 --mb-epochs 1 --no-append   # smoke test
"""

import argparse
import time
import warnings

import numpy as np
import torch

import cvlearn as cl

try:
    from _common import append_section, markdown_table
except ImportError:  # imported as benchmarks.train_device
    from benchmarks._common import append_section, markdown_table


def simulate(dim, walkers, frames, device):
    """(frames, features) arrays, one per walker, of the hidden double well at 300 K."""
    engine = cl.Langevin(cl.systems.HiddenDoubleWell(dim=dim), timestep=0.02, friction=1.0, n_walkers=walkers,
                         seed=0, device=device)
    engine.run(500, stride=500)  # leave the starting point
    traj = engine.run(5 * frames, stride=5)
    x = np.asarray(traj.positions).reshape(len(traj.positions), walkers, -1).astype(np.float32)
    return [x[:, i] for i in range(walkers)]


def timed_fit(learner, data):
    if learner.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    learner.fit(data)
    if learner.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, min(learner.history_["valid"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--walkers", type=int, default=200)
    parser.add_argument("--frames", type=int, default=2500, help="frames per walker")
    parser.add_argument("--layers", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--epochs", type=int, default=30, help="full-batch epochs")
    parser.add_argument("--mb-epochs", type=int, default=3, help="minibatch epochs")
    parser.add_argument("--batch", type=int, default=4096, help="minibatch size")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=cl.ConvergenceWarning)  # early stopping is off on purpose
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    data = simulate(args.features, args.walkers, args.frames, devices[-1])
    n_frames = sum(len(x) for x in data)
    print(f"{n_frames} frames x {args.features} features; devices {devices}; threads {torch.get_num_threads()}")

    common = dict(layers=args.layers, n_components=2, seed=0, dtype="float32")
    cases = [
        ("DeepTICA full batch", args.epochs,
         lambda dev, e: cl.DeepTICA(lagtime=5, max_epochs=e, patience=e, device=dev, **common)),
        (f"DeepTICA batch {args.batch}", args.mb_epochs,
         lambda dev, e: cl.DeepTICA(lagtime=5, max_epochs=e, patience=e, batch_size=args.batch, device=dev,
                                    **common)),
        (f"AutoEncoder batch {args.batch}", args.mb_epochs,
         lambda dev, e: cl.AutoEncoder(max_epochs=e, patience=e, batch_size=args.batch, device=dev, **common)),
    ]
    rows = []
    for name, epochs, make in cases:
        per_epoch, losses = {}, {}
        for dev in devices:
            timed_fit(make(dev, 1), [x[:200] for x in data[:4]])  # warm-up: kernels, allocator
            secs, losses[dev] = timed_fit(make(dev, epochs), data)
            per_epoch[dev] = secs / epochs
            print(f"{name} on {dev}: {per_epoch[dev]:.3f} s/epoch, best valid loss {losses[dev]:.4f}", flush=True)
        ratio = f"{per_epoch['cpu'] / per_epoch['cuda']:.1f}" if "cuda" in per_epoch else "-"
        rows.append([name, epochs, *(f"{per_epoch[d]:.3f}" for d in devices), ratio,
                     " / ".join(f"{losses[d]:.4f}" for d in devices)])
    header = ["case", "epochs", *(f"s / epoch ({d})" for d in devices), "CPU / CUDA", "best valid loss (" +
              " / ".join(devices) + ")"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        note = (f"{n_frames:,} frames x {args.features} features (HiddenDoubleWell, {args.walkers} walkers), "
                f"layers {args.layers}, 2 components, float32, early stopping off; CPU threads "
                f"{torch.get_num_threads()}.")
        append_section("Training on CPU vs GPU", note + "\n\n" + table)


if __name__ == "__main__":
    main()
