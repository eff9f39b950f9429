"""Regenerate the reference files of this folder with a real PLUMED (``plumed driver`` and ``plumed sum_hills``).

Run from the repository root, with PLUMED on the path (``. ../shared/plumed/env.sh .venv/bin/python``)::

    .venv/bin/python tests/data/plumed/generate.py

A random walk of 5 atoms gives two torsions (phi, psi: periodic) and a distance (d: not periodic);
PLUMED biases them and writes its own files: restarted runs append a second ``#! FIELDS`` block with
the CVs in the other order, adaptive (GEOM, DIFF) hills are multivariate, and a third run restarted
from each OPES file with no deposition (PACE larger than the run) prints the bias PLUMED rebuilt.
"""

import os
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CVS = """phi: TORSION ATOMS=1,2,3,4
psi: TORSION ATOMS=2,3,4,5
d: DISTANCE ATOMS=1,5
"""


def trajectory(path, seed, n=400):
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [0.15, 0, 0], [0.2, 0.14, 0], [0.35, 0.14, 0.0], [0.4, 0.28, 0.0]])
    pos, out = base.copy(), []
    for _ in range(n):
        pos = pos + rng.normal(scale=0.02, size=pos.shape) + 0.05 * (base - pos)
        out.append("5\n 3.0 3.0 3.0\n" + "".join(f"X {10 * x:.6f} {10 * y:.6f} {10 * z:.6f}\n" for x, y, z in pos))
    with open(path, "w") as fh:
        fh.write("".join(out))


def driver(work, text, traj):
    with open(os.path.join(work, "plumed.dat"), "w") as fh:
        fh.write(text)
    subprocess.run(["plumed", "driver", "--plumed", "plumed.dat", "--ixyz", traj, "--timestep", "0.002"],
                   cwd=work, check=True, capture_output=True)


def sum_hills(work, hills, out, lo, hi, bins):
    subprocess.run(["plumed", "sum_hills", "--hills", hills, "--outfile", out, "--min", lo, "--max", hi,
                    "--bin", bins, "--fmt", "%.10f"], cwd=work, check=True, capture_output=True)


def keep(work, name):
    with open(os.path.join(work, name)) as fh:
        text = fh.read()
    if name.startswith("fes_"):  # sum_hills output less its derivative columns: the CVs and file.free
        out = []
        for line in text.splitlines():
            parts = line.split()
            if parts[:2] == ["#!", "FIELDS"]:
                n = parts.index("file.free") + 1
                out.append(" ".join(parts[:n]))
            elif line.startswith("#"):
                out.append(line)
            elif parts:
                out.append(" ".join(parts[:n - 2]))
        text = "\n".join(out) + "\n"
    with open(os.path.join(HERE, name), "w") as fh:
        fh.write(text)


def main():
    work = tempfile.mkdtemp()
    t1, t2 = os.path.join(work, "t1.xyz"), os.path.join(work, "t2.xyz")
    trajectory(t1, 1)
    trajectory(t2, 2)
    # Well-tempered 2-D metadynamics, restarted with the CVs in the other order (two FIELDS blocks).
    metad = "metad: METAD ARG={a} SIGMA={s} HEIGHT=1.2 PACE=10 BIASFACTOR=8 TEMP=300 FILE=HILLS_restart\n"
    driver(work, CVS + metad.format(a="phi,psi", s="0.35,0.3")
           + "PRINT ARG=phi,psi,metad.bias STRIDE=10 FILE=COLVAR_restart\n", t1)
    driver(work, "RESTART\n" + CVS + metad.format(a="psi,phi", s="0.3,0.35")
           + "PRINT ARG=psi,phi,metad.bias STRIDE=10 FILE=COLVAR_restart\n", t2)
    sum_hills(work, "HILLS_restart", "fes_restart.dat", "-pi,-pi", "pi,pi", "40,40")
    # Multivariate hills: ADAPTIVE=GEOM on 2 CVs (one periodic), ADAPTIVE=DIFF on 1 and 3 CVs.
    driver(work, CVS + "METAD ARG=phi,d ADAPTIVE=GEOM SIGMA=0.05 HEIGHT=1.0 PACE=10 BIASFACTOR=6 TEMP=300 "
           "FILE=HILLS_geom2d\n", t1)
    sum_hills(work, "HILLS_geom2d", "fes_geom2d.dat", "-pi,0.0", "pi,2.6", "48,52")
    driver(work, CVS + "METAD ARG=d ADAPTIVE=DIFF SIGMA=20 HEIGHT=1.0 PACE=10 TEMP=300 FILE=HILLS_diff1d\n", t1)
    sum_hills(work, "HILLS_diff1d", "fes_diff1d.dat", "0.0", "2.6", "260")
    driver(work, CVS + "METAD ARG=phi,psi,d ADAPTIVE=DIFF SIGMA=20 HEIGHT=1.0 PACE=20 BIASFACTOR=10 TEMP=300 "
           "FILE=HILLS_diff3d\n", t1)
    sum_hills(work, "HILLS_diff3d", "fes_diff3d.dat", "-pi,-pi,0.0", "pi,pi,2.6", "12,12,13")
    # OPES_METAD and OPES_METAD_EXPLORE: KERNELS restarted with the CVs swapped, a STATE file, and runs that
    # restart from them without depositing (PACE > steps), whose COLVAR prints PLUMED's rebuilt bias.
    for action, tag in (("OPES_METAD", "opes"), ("OPES_METAD_EXPLORE", "explore")):
        opes = (f"opes: {action} ARG={{a}} SIGMA={{s}} PACE={{p}} BARRIER=15 TEMP=300 FILE=KERNELS_{tag} "
                f"STATE_WFILE=STATE_{tag} STATE_WSTRIDE=200 {{extra}}\n")
        driver(work, CVS + opes.format(a="phi,psi", s="0.3,0.25", p=10, extra=""), t1)
        driver(work, "RESTART\n" + CVS + opes.format(a="psi,phi", s="0.25,0.3", p=10, extra="STORE_STATES")
               + f"PRINT ARG=psi,phi,opes.bias STRIDE=10 FILE=COLVAR_{tag}\n", t2)
        with open(os.path.join(work, f"STATE_{tag}")) as fh:  # STORE_STATES: one block per state; PLUMED's
            text = fh.read()                                      # STATE_RFILE reads one, so give it the last
        with open(os.path.join(work, f"STATE_{tag}_saved"), "w") as fh:
            fh.write(text[text.rfind("#! FIELDS"):])
        driver(work, "RESTART\n" + CVS + opes.format(a="phi,psi", s="0.3,0.25", p=100000, extra="")
               .replace(f"STATE_WFILE=STATE_{tag} STATE_WSTRIDE=200", f"STATE_WFILE=STATE_{tag}_x")
               + f"PRINT ARG=phi,psi,opes.bias STRIDE=20 FILE=COLVAR_{tag}_from_kernels\n", t1)
        driver(work, "RESTART\n" + CVS + opes.format(a="phi,psi", s="0.3,0.25", p=100000,
                                                     extra=f"STATE_RFILE=STATE_{tag}_saved")
               .replace(f"FILE=KERNELS_{tag}", f"FILE=KERNELS_{tag}_y")
               .replace(f"STATE_WFILE=STATE_{tag} STATE_WSTRIDE=200", f"STATE_WFILE=STATE_{tag}_y")
               + f"PRINT ARG=phi,psi,opes.bias STRIDE=20 FILE=COLVAR_{tag}_from_state\n", t1)
    names = ["HILLS_restart", "COLVAR_restart", "fes_restart.dat", "HILLS_geom2d", "fes_geom2d.dat", "HILLS_diff1d",
             "fes_diff1d.dat", "HILLS_diff3d", "fes_diff3d.dat"]
    for tag in ("opes", "explore"):
        names += [f"COLVAR_{tag}", f"COLVAR_{tag}_from_kernels", f"COLVAR_{tag}_from_state", f"STATE_{tag}"]
    for name in names:
        keep(work, name)
    # KERNELS_<tag> was appended to by the check run restarted from it (with no new rows): keep the run's copy.
    for tag in ("opes", "explore"):
        keep(work, f"KERNELS_{tag}")
    print("wrote", len(names) + 2, "files to", HERE, "from", work)


if __name__ == "__main__":
    main()
