"""Helpers of the tests that run a real PLUMED (test_plumed_real*.py): find it, run its driver, make frames.

The PLUMED is the 2.11-dev build (PYTORCH and OPES modules, linked to the torch 2.13.0 wheel's LibTorch)
at ``../shared/plumed`` beside the repository, or the ``plumed`` executable named by ``CVLEARN_PLUMED``.
Its ``env.sh`` sets PATH, LD_LIBRARY_PATH (its lib/ and torch's), PLUMED_ROOT and PLUMED_KERNEL; the
same is done here from the executable's location, so no shell is sourced.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "plumed" / "bin" / "plumed"
STRIDE = 20  # MD steps between the frames of the test trajectory (PLUMED's step = frame * STRIDE)
TIMESTEP = 0.002  # ps


class Plumed:
    """A PLUMED executable and the environment it runs in."""

    def __init__(self, exe):
        self.exe = Path(exe)
        lib = self.exe.resolve().parent.parent / "lib"
        torch_lib = Path(torch.__file__).parent / "lib"
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [str(lib), str(torch_lib)] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
        if (lib / "plumed").is_dir():
            env["PLUMED_ROOT"] = str(lib / "plumed")
        if (lib / "libplumedKernel.so").is_file():
            env["PLUMED_KERNEL"] = str(lib / "libplumedKernel.so")
        self.env = env
        self.version = None

    def run(self, args, cwd, check=True):
        out = subprocess.run([str(self.exe), *args], cwd=cwd, env=self.env, capture_output=True, text=True,
                             timeout=300)
        if check and out.returncode != 0:
            raise AssertionError(f"plumed {' '.join(args)} failed (exit {out.returncode}) in {cwd}:\n"
                                 f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out

    def driver(self, cwd, plumed_dat, xtc=None):
        """``plumed driver`` on ``xtc`` (frames STRIDE steps of TIMESTEP apart), or without atoms."""
        args = ["driver", "--plumed", str(plumed_dat)]
        args += (["--mf_xtc", str(xtc), "--timestep", str(TIMESTEP), "--trajectory-stride", str(STRIDE)]
                 if xtc is not None else ["--noatoms"])
        return self.run(args, cwd)


def find_plumed():
    """The PLUMED to test against, or ``pytest.skip`` with the reason there is none."""
    override = os.environ.get("CVLEARN_PLUMED")
    exe = Path(override) if override else DEFAULT
    if not exe.is_file():
        where = f"CVLEARN_PLUMED={override}" if override else f"{DEFAULT} (../shared/plumed beside the repository)"
        pytest.skip(f"no PLUMED executable at {where}; set CVLEARN_PLUMED to a plumed built with the PYTORCH "
                    "and OPES modules to run these tests")
    plumed = Plumed(exe)
    try:
        out = plumed.run(["info", "--version"], cwd=ROOT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"{exe} does not run: {err}")
    if out.returncode != 0:
        pytest.skip(f"`{exe} info --version` failed (exit {out.returncode}): {(out.stderr or out.stdout)[-500:]}")
    plumed.version = out.stdout.strip()
    return plumed


def print_every_frame(plumed_dat, fmt="%.12e"):
    """The export's plumed.dat with its PRINT line printing every frame at full precision (PLUMED's
    default %f keeps 6 decimals, too few to compare to 1e-5)."""
    text = Path(plumed_dat).read_text()
    text, n = re.subn(r"^(PRINT .*)STRIDE=\d+(.*)$", rf"\1STRIDE=1\2 FMT={fmt}", text, flags=re.M)
    assert n == 1, text
    Path(plumed_dat).write_text(text)
    return text


def alanine_metad_run(directory, n_frames=400, seed=0):
    """cvlearn's OpenMM engine: alanine dipeptide (vacuum, 300 K) with well-tempered metadynamics on phi.

    ``n_frames`` frames STRIDE steps apart (400: 16 ps), written as ``traj.xtc``; cvlearn's ``HILLS`` and
    ``COLVAR`` beside it. Returns the frames as read back from the xtc (float64 nm, what PLUMED reads
    too), the phi CV and the metadynamics bias.
    """
    import mdtraj as md

    import cvlearn as cl

    directory = Path(directory)
    pdb = cl.data.alanine_dipeptide_pdb()
    top = md.load_topology(pdb)
    phi = cl.learners.CollectiveVariable(cl.learners.LinearCV([0.0], [[1.0]]),
                                         featurizer=cl.features.Dihedrals(top, "phi"), names=["phi"])
    metad = cl.WellTemperedMetad(phi, sigma=0.35, height=2.0, bias_factor=10.0, pace=100,
                                 grid=cl.Grid(-np.pi, np.pi, 200, periodic=True))
    engine = cl.engine.OpenMM.from_pdb(pdb, bias=metad, seed=seed, temperature=300.0)
    run = engine.run(n_frames * STRIDE, stride=STRIDE, colvar=str(directory / "COLVAR"),
                     hills=str(directory / "HILLS"))
    md.Trajectory(run.positions[:, 0], top).save_xtc(str(directory / "traj.xtc"))
    frames = md.load(str(directory / "traj.xtc"), top=top)
    return {"dir": directory, "xtc": directory / "traj.xtc", "top": top, "frames": frames,
            "positions": torch.as_tensor(frames.xyz.astype(np.float64)), "phi": phi, "metad": metad}


def plumed_metad_bias(s, hills, bias_factor, period=None):
    """PLUMED's METAD bias at ``s`` (n, d) from HILLS rows (time, centers, sigmas, height): its Gaussians
    are truncated where (|s - c| / sigma)^2 / 2 reaches 6.25 and stretched to reach zero there
    (src/bias/MetaD.cpp: stretchA exp(-dp2) + stretchB), with the file's heights scaled back by
    (gamma - 1) / gamma for well-tempered runs; ``period`` (one per CV, None = not periodic) folds the
    distances as PLUMED does. An independent reading of PLUMED, for the tests."""
    s = np.atleast_2d(s)
    d = s.shape[1]
    centers, sigmas, heights = hills[:, 1:1 + d], hills[:, 1 + d:1 + 2 * d], hills[:, 1 + 2 * d]
    if bias_factor is not None and bias_factor > 1:
        heights = heights * (bias_factor - 1.0) / bias_factor
    cutoff = 6.25
    stretch_a, stretch_b = 1.0 / (1.0 - np.exp(-cutoff)), -np.exp(-cutoff) / (1.0 - np.exp(-cutoff))
    diff = s[:, None, :] - centers[None]
    if period is not None:
        p = np.array([np.inf if x is None else x for x in period], dtype=float)
        diff = np.where(np.isfinite(p), diff - p * np.round(diff / np.where(np.isfinite(p), p, 1.0)), diff)
    dp2 = 0.5 * ((diff / sigmas[None]) ** 2).sum(-1)
    kernel = np.where(dp2 < cutoff, stretch_a * np.exp(-dp2) + stretch_b, 0.0)
    return kernel @ heights


def copy(src, dst):
    shutil.copyfile(src, dst)
    return Path(dst)
