"""Train mlcolvar's DeepTICA on arrays prepared by train_vs_mlcolvar.py; run inside the mlcolvar venv.

Usage (done by train_vs_mlcolvar.py; this script never imports cvlearn)::

    benchmarks/.venv-mlcolvar/bin/python benchmarks/_mlcolvar_worker.py IN.npz OUT.npz

IN.npz holds the time-lagged training and validation pairs (raw features: ``train_x``, ``train_y``,
``train_w``, ``valid_x``, ...), the standardization (``mean``, ``std``), the held-out test
trajectories (``test_0``, ``test_1``, ...) and the settings (``layers``, ``lr``, ``max_epochs``,
``patience``, ``batch_size``, ``epsilon``, ``threads``, ``seed``, ``activation``).

The model is ``mlcolvar.cvs.DeepTICA(layers=[n_features, *hidden, n_components])`` with the
default loss (ReduceEigenvaluesLoss, mode "sum2": minus the sum of squared TICA eigenvalues),
input normalization set to the given mean/std, the given activation, C0 regularization
``epsilon`` and Adam with the given learning rate, trained by a Lightning Trainer on the CPU. The
train and validation sets are exactly the given pairs: a DictModule with a sequential split of
integer lengths [n_train, n_valid] over their concatenation. ``batch_size`` (0: full batch) applies
to training; validation is one batch, as in cvlearn. A callback keeps the weights of the best
validation loss in memory and restores them at the end (as cvlearn does); ``patience < max_epochs``
adds Lightning's EarlyStopping on the validation loss, otherwise every epoch runs.

OUT.npz: ``epoch_end`` and ``epoch_end_cpu`` (perf_counter and process_time at the end of each
training epoch, its validation included), ``t_start``/``t_fit_start``/``t_end`` and
``c_start``/``c_end`` (the timed part: numpy arrays -> trained model), ``train_loss``/``valid_loss``
per epoch, ``best_epoch``, ``z_test_i`` (network outputs, before mlcolvar's TICA block, for each
test trajectory) and ``versions``.
"""

import copy
import math
import sys
import time
import warnings

import numpy as np
import torch


def main(inp, out):
    d = np.load(inp)
    torch.set_num_threads(int(d["threads"]))
    t_import = time.perf_counter()
    import lightning
    import mlcolvar
    from mlcolvar.cvs import DeepTICA
    from mlcolvar.data import DictDataset, DictModule

    t_import = time.perf_counter() - t_import
    # The same warm-up as in train_vs_mlcolvar.py: the lazy imports and first-call costs of torch
    # (Adam imports torch._dynamo; LAPACK) are paid before the clock starts in both processes.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    torch.linalg.eigh(torch.linalg.cholesky(torch.eye(2)))
    warnings.filterwarnings("ignore")  # Lightning's hints (num_workers, ...) would only clutter the log
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        import logging

        logging.getLogger(name).setLevel(logging.ERROR)

    max_epochs, patience = int(d["max_epochs"]), int(d["patience"])
    batch_size = int(d["batch_size"])  # 0: full batch (mlcolvar's own convention)
    layers = [int(n) for n in d["layers"]]
    lightning.seed_everything(int(d["seed"]), verbose=False)

    class Timer(lightning.Callback):
        """perf_counter at the end of each training epoch (after its validation) and the losses."""

        def __init__(self):
            self.ends, self.cpu, self.train, self.valid = [], [], [], []

        def on_train_epoch_end(self, trainer, pl_module):
            self.ends.append(time.perf_counter())
            self.cpu.append(time.process_time())
            m = trainer.callback_metrics
            self.train.append(float(m.get("train_loss_epoch", m.get("train_loss", math.nan))))
            self.valid.append(float(m.get("valid_loss_epoch", m.get("valid_loss", math.nan))))

    class BestWeights(lightning.Callback):
        """Keep the weights of the lowest validation loss in memory; restore them when fit ends."""

        def __init__(self):
            self.best, self.state, self.epoch, self.count = math.inf, None, 0, 0

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            v = float(trainer.callback_metrics["valid_loss_epoch"])
            if math.isfinite(v) and v < self.best - 1e-9 * abs(self.best if math.isfinite(self.best) else 0):
                self.best, self.epoch = v, self.count
                self.state = copy.deepcopy(pl_module.state_dict())
            self.count += 1

        def on_fit_end(self, trainer, pl_module):
            if self.state is not None:
                pl_module.load_state_dict(self.state)

    # ---- timed from here: numpy arrays in memory -> trained model ----
    t_start, c_start = time.perf_counter(), time.process_time()
    parts = {}
    for key in ("x", "y", "w"):
        parts[key] = torch.as_tensor(np.concatenate([d[f"train_{key}"], d[f"valid_{key}"]]), dtype=torch.float32)
    n_train, n_valid = len(d["train_x"]), len(d["valid_x"])
    dataset = DictDataset({"data": parts["x"], "data_lag": parts["y"],
                           "weights": parts["w"], "weights_lag": parts["w"]})
    # Validation in one batch, as cvlearn does (a minibatch size applies to training only).
    datamodule = DictModule(dataset, lengths=[n_train, n_valid], batch_size=[batch_size, 0], random_split=False)
    options = {
        "norm_in": {"mean": torch.as_tensor(d["mean"], dtype=torch.float32),
                    "range": torch.as_tensor(d["std"], dtype=torch.float32)},
        "nn": {"activation": str(d["activation"])},
        "optimizer": {"lr": float(d["lr"])},
    }
    model = DeepTICA(layers, n_cvs=layers[-1], options=options)
    model.set_regularization(c0_reg=float(d["epsilon"]))
    timer = Timer()
    best = BestWeights()  # as cvlearn: the weights of the best validation loss are the result
    callbacks = [timer, best]
    if patience < max_epochs:
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(EarlyStopping(monitor="valid_loss_epoch", patience=patience, mode="min", min_delta=0.0))
    trainer = lightning.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                callbacks=callbacks)
    t_fit_start = time.perf_counter()
    trainer.fit(model, datamodule)
    t_end, c_end = time.perf_counter(), time.process_time()
    # ---- end of timed part ----

    best_epoch = best.epoch
    model.eval()
    result = {"epoch_end": np.array(timer.ends), "epoch_end_cpu": np.array(timer.cpu), "t_start": t_start,
              "c_start": c_start, "c_end": c_end, "t_fit_start": t_fit_start, "t_end": t_end,
              "t_import": t_import, "train_loss": np.array(timer.train), "valid_loss": np.array(timer.valid),
              "best_epoch": best_epoch,
              "versions": f"mlcolvar {mlcolvar.__version__}, lightning {lightning.__version__}, "
                          f"torch {torch.__version__} (intra-op threads: {torch.get_num_threads()})"}
    with torch.no_grad():
        i = 0
        while f"test_{i}" in d:
            x = torch.as_tensor(d[f"test_{i}"], dtype=torch.float32)
            result[f"z_test_{i}"] = model.forward_nn(x).double().numpy()
            i += 1
    np.savez(out, **result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
