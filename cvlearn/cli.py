"""The ``cvlearn`` command line."""

import argparse
import logging
import math
import os
import sys

from .app import METHODS, commands
from .exceptions import CVLearnError

__all__ = ["main"]

#: Mistakes reported as one line (``cvlearn <command>: message``, exit status 2) unless --debug.
USER_ERRORS = (ValueError, FileNotFoundError, CVLearnError)


class _Parser(argparse.ArgumentParser):
    """argparse, but a command-line mistake is one line: what is wrong, and where the help is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _number(kind, minimum, strict, words):
    """An argparse ``type``: a finite ``kind`` (int or float) above ``minimum`` (or equal, unless ``strict``)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {words}; got {text!r}")
        return value

    parse.__name__ = words  # argparse names the type by it in some messages
    return parse


POSITIVE_INT = _number(int, 0, True, "a positive integer")
COUNT = _number(int, 0, False, "an integer >= 0")
POSITIVE = _number(float, 0.0, True, "a positive number")
ABOVE_ONE = _number(float, 1.0, True, "a number > 1")
NON_NEGATIVE = _number(float, 0.0, False, "a number >= 0")


def _grid_spec(text):
    """``lo,hi,bins`` of one CV component: lo < hi, bins a positive integer."""
    parts = text.split(",")
    try:
        lo, hi, bins = float(parts[0]), float(parts[1]), POSITIVE_INT(parts[2])
        ok = len(parts) == 3 and math.isfinite(lo) and math.isfinite(hi) and lo < hi
    except (ValueError, IndexError, argparse.ArgumentTypeError):
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"must be lo,hi,bins with lo < hi and a positive number of bins (e.g. "
                                         f"--grid=-3,3,300); got {text!r}")
    return lo, hi, bins


def _check_together(parser, args):
    """What no single option's type can check: options that must agree with each other."""
    steps, stride = getattr(args, "steps", None), getattr(args, "stride", None)
    if steps is not None and stride is not None and stride > steps:
        parser.error(f"--stride {stride} is larger than --steps {steps}, so no frame would be saved: pass a "
                     "--stride of at most --steps")
    if args.command == "quickstart" and args.steps % 5:
        parser.error(f"--steps must be a multiple of 5 (the run is written in 5 chunks); got {args.steps}")


def _md_options(p, steps_help):
    p.add_argument("--pdb", help="structure file (default: the alanine dipeptide shipped with cvlearn)")
    p.add_argument("--forcefield", nargs="+", default=["amber99sbildn.xml"],
                   help="OpenMM force-field XML files (default amber99sbildn.xml)")
    p.add_argument("--steps", type=POSITIVE_INT, required=True, help=steps_help)
    p.add_argument("--stride", type=POSITIVE_INT, default=500, help="save a frame every this many steps (default 500)")
    p.add_argument("--temperature", type=POSITIVE, default=300.0, help="K (default 300)")
    p.add_argument("--timestep", type=POSITIVE, default=0.002, help="ps (default 0.002)")
    p.add_argument("--friction", type=POSITIVE, default=1.0, help="1/ps (default 1)")
    p.add_argument("--platform", help="OpenMM platform (default: chosen by system size)")
    p.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same settings)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_molecular_commands(sub):
    sim = sub.add_parser("simulate", help="Unbiased MD of a molecule with OpenMM.",
                         description=commands.simulate_command.__doc__)
    _md_options(sim, "number of MD steps")
    sim.set_defaults(func=commands.simulate_command)

    lrn = sub.add_parser("learn", help="Learn a CV from trajectories.", description=commands.learn_command.__doc__)
    lrn.add_argument("--traj", nargs="+", required=True, help="trajectory files (xtc, dcd, h5, pdb, ...)")
    lrn.add_argument("--top", required=True, help="topology / structure file (pdb, prmtop, ...)")
    lrn.add_argument("--features", default="distances:heavy",
                     help="features, e.g. distances:heavy (default), dihedrals:phi,psi, sincos:phi,psi, "
                     "contacts:heavy:0.5, positions:backbone; join several with +")
    lrn.add_argument("--method", choices=METHODS, default="tica",
                     help="learner (default tica)")
    lrn.add_argument("--lag", type=POSITIVE_INT, default=10, help="lag time in frames (default 10)")
    lrn.add_argument("--components", type=POSITIVE_INT, default=1, help="number of CV components (default 1)")
    lrn.add_argument("--stride", type=POSITIVE_INT, default=1, help="use every n-th frame (default 1)")
    lrn.add_argument("--chunk", type=POSITIVE_INT, help="stream the files in chunks of this many frames (tica, pca)")
    lrn.add_argument("--epochs", type=POSITIVE_INT, default=200,
                     help="maximum training epochs for networks (default 200)")
    lrn.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    lrn.add_argument("--out", default="cv.pt", help="where to save the CV (default cv.pt; folders are created)")
    lrn.set_defaults(func=commands.learn_command)

    bia = sub.add_parser("bias", aliases=["metad"], help="Well-tempered metadynamics on a learned CV.",
                         description=commands.bias_command.__doc__)
    bia.add_argument("--engine", choices=("openmm",), default="openmm", help="MD engine (default openmm)")
    bia.add_argument("--cv", required=True, help="a CV saved by `cvlearn learn` or cl.save")
    bia.add_argument("--sigma", type=POSITIVE, nargs="+", required=True, help="Gaussian width per CV component")
    bia.add_argument("--height", type=POSITIVE, default=1.2, help="initial hill height, kJ/mol (default 1.2)")
    bia.add_argument("--bias-factor", type=ABOVE_ONE, default=10.0, help="well-tempered bias factor (default 10)")
    bia.add_argument("--pace", type=POSITIVE_INT, default=500, help="steps between hills (default 500)")
    bia.add_argument("--grid", type=_grid_spec, help="lo,hi,bins of a 1-D CV (default: start +- 50 sigma, sigma/5 "
                     "spacing); write --grid=-3,3,300 when lo is negative")
    bia.add_argument("--bias-interval", type=POSITIVE_INT, default=1,
                     help="apply the bias force every k steps (multiple time stepping; default 1)")
    _md_options(bia, "number of MD steps")
    bia.set_defaults(func=commands.bias_command)

    exp = sub.add_parser("export", help="Export a CV as TorchScript or for PLUMED.",
                         description=commands.export_command.__doc__)
    exp.add_argument("cv", help="a CV saved by `cvlearn learn` or cl.save")
    exp.add_argument("--plumed", action="store_true", help="write model.ptc and plumed.dat for PLUMED")
    exp.add_argument("--out", required=True, help="output directory (PLUMED) or file (TorchScript)")
    exp.add_argument("--bias", choices=("metad", "opes", "none"), default="metad", help="bias line (default metad)")
    exp.add_argument("--sigma", type=POSITIVE, nargs="+", help="Gaussian width per CV component (metad; opes optional)")
    exp.add_argument("--grid", nargs="+", type=_grid_spec,
                     help="lo,hi,bins per CV component (metad); write --grid=-3,3,300 when lo is negative")
    exp.add_argument("--height", type=POSITIVE, default=1.2, help="kJ/mol (default 1.2)")
    exp.add_argument("--bias-factor", type=ABOVE_ONE, default=10.0, help="well-tempered bias factor (default 10)")
    exp.add_argument("--barrier", type=POSITIVE, help="OPES barrier, kJ/mol")
    exp.add_argument("--pace", type=POSITIVE_INT, default=500, help="steps between hills/kernels (default 500)")
    exp.add_argument("--temperature", type=POSITIVE, default=300.0, help="K (default 300)")
    exp.add_argument("--walkers", type=POSITIVE_INT, help="number of PLUMED multiple walkers")
    exp.add_argument("--walkers-dir", default="../", help="shared directory of the walkers (default ../)")
    exp.set_defaults(func=commands.export_command)


def _add_iterate_command(sub):
    it = sub.add_parser("iterate", help="Learn, bias, reweight, relearn: rounds until Delta F settles.",
                        description=commands.iterate_command.__doc__)
    it.add_argument("--system", choices=("muller-brown", "molecule"), default="muller-brown",
                    help="muller-brown (built-in engine, default) or molecule (OpenMM, see --pdb)")
    it.add_argument("--pdb", help="molecule: structure file (default: the shipped alanine dipeptide)")
    it.add_argument("--forcefield", nargs="+", default=["amber99sbildn.xml"],
                    help="molecule: OpenMM force-field XML files (default amber99sbildn.xml; implicit solvent: "
                    "amber99sbildn.xml amber99_obc.xml)")
    it.add_argument("--features", default="distances:heavy",
                    help="molecule: what the CV is learned from, e.g. distances:heavy (default), sincos:phi,psi")
    it.add_argument("--variable", help="molecule: the variable(s) Delta F is measured on, a feature specification "
                    "(default for the shipped alanine dipeptide: dihedrals:phi)")
    it.add_argument("--basin-a", type=float, nargs="+", metavar="LO HI",
                    help="molecule: basin a as lo hi per variable, in its units (alanine default: -3.1416 0, rad)")
    it.add_argument("--basin-b", type=float, nargs="+", metavar="LO HI",
                    help="molecule: basin b likewise (alanine default: 0 3.1416); Delta F = F(b) - F(a)")
    expert = it.add_argument_group("protocol (experts; each default is the measured protocol of the system)")
    expert.add_argument("--method", choices=METHODS,
                        help="CV learner (default deeptica for a molecule, tica for muller-brown)")
    expert.add_argument("--bias", choices=("opes", "metad"),
                        help="bias: OPES_METAD (default for a molecule) or well-tempered metadynamics (muller-brown)")
    expert.add_argument("--barrier", type=POSITIVE, default=40.0, help="OPES barrier, kJ/mol (default 40)")
    expert.add_argument("--rounds", type=POSITIVE_INT, help="maximum rounds (default 8 molecule, 5 muller-brown)")
    expert.add_argument("--walkers", type=POSITIVE_INT, help="walkers sharing each round's bias (default 4 molecule, 8 "
                        "muller-brown; metadynamics on a molecule runs 1)")
    expert.add_argument("--steps", type=POSITIVE_INT,
                        help="biased steps per round and walker (default 125000 = 250 ps for "
                        "a molecule, 20000 of 5 fs for muller-brown)")
    expert.add_argument("--initial-steps", type=POSITIVE_INT,
                        help="steps of the exploration run the first CV is learned "
                        "from (default 1000000 = 2 ns for a molecule, 4000 for muller-brown)")
    expert.add_argument("--explore-temperature", type=POSITIVE,
                        help="molecule: K of the unbiased exploration run (default 700; 300 = no heating)")
    expert.add_argument("--learn-rounds", type=POSITIVE_INT,
                        help="molecule: rounds that relearn the CV before its bias "
                        "is continued for production (default 2)")
    expert.add_argument("--n-models", type=POSITIVE_INT,
                        help="networks trained per round, the best by VAMP-2 kept (default 3)")
    expert.add_argument("--min-transitions", type=COUNT, help="transitions an estimate's frames must hold before "
                        "it can settle (default 100 molecule, 0 muller-brown)")
    expert.add_argument("--n-components", type=POSITIVE_INT,
                        help="components of the learned CV, 1 to 3, all biased (default 2 molecule, 1 "
                        "muller-brown)")
    expert.add_argument("--stride", type=POSITIVE_INT,
                        help="steps between frames (default 10 muller-brown, 100 molecule)")
    expert.add_argument("--lag", type=POSITIVE_INT,
                        help="lag time in frames (default 10 muller-brown, 5 = 1 ps molecule)")
    expert.add_argument("--height", type=POSITIVE, help="metadynamics: initial hill height, kJ/mol (default 1.5 "
                        "muller-brown, 1.2 molecule)")
    expert.add_argument("--bias-factor", type=ABOVE_ONE, default=10.0, help="metadynamics: bias factor (default 10)")
    expert.add_argument("--pace", type=POSITIVE_INT, help="steps between hills/kernels (default 100 muller-brown, 500 "
                        "molecule)")
    expert.add_argument("--skip", type=NON_NEGATIVE,
                        help="fraction of each round's frames discarded as transient before "
                        "reweighting (default 0.5 molecule, 0.3 muller-brown)")
    expert.add_argument("--reweighting", choices=("ct", "final", "bias"),
                        help="c(t) (metadynamics default), final-bias, or the bias at each frame (OPES default)")
    expert.add_argument("--train-weights", choices=("reweighted", "sampled"),
                        help="train on the biased frames with their weights (muller-brown default) or as sampled "
                        "(molecule default)")
    expert.add_argument("--bins", type=POSITIVE_INT, default=60, help="histogram bins per variable (default 60)")
    expert.add_argument("--tol", type=POSITIVE, default=1.0,
                        help="stop when Delta F of two rounds agrees within this, kJ/mol (default 1)")
    expert.add_argument("--epochs", type=POSITIVE_INT,
                        help="maximum training epochs for networks (default 60 molecule: a "
                        "smooth CV to bias; 200 muller-brown)")
    expert.add_argument("--temperature", type=POSITIVE, help="K (default 300)")
    expert.add_argument("--timestep", type=POSITIVE, default=0.002, help="molecule: ps (default 0.002)")
    expert.add_argument("--platform", help="molecule: OpenMM platform (default: chosen by system size)")
    it.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    it.add_argument("--out", default="iterate_out", help="output directory (default iterate_out)")
    it.add_argument("--no-progress", action="store_true", help="hide progress bars")
    it.set_defaults(func=commands.iterate_command)


def _add_walkers_command(sub):
    wk = sub.add_parser("walkers", help="Walkers sharing one bias across processes or machines (Dask).",
                        description=commands.walkers_command.__doc__)
    wk.add_argument("--n-walkers", type=POSITIVE_INT, required=True, help="number of walkers (one Dask task each)")
    wk.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a "
                    "LocalCluster of worker processes on this machine)")
    wk.add_argument("--timeout", type=POSITIVE, default=10.0, help="seconds to wait for --scheduler (default 10)")
    wk.add_argument("--system", choices=("muller-brown", "hidden-double-well", "alanine"), default="muller-brown",
                    help="system to sample (default muller-brown)")
    wk.add_argument("--steps", type=POSITIVE_INT, default=20000, help="steps per walker (default 20000)")
    wk.add_argument("--read-stride", type=POSITIVE_INT, default=500,
                    help="steps between reads of the other walkers' HILLS files (default 500)")
    wk.add_argument("--stride", type=POSITIVE_INT, default=100, help="steps between COLVAR rows; divides --read-stride "
                    "(default 100)")
    wk.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    wk.add_argument("--out", default="walkers_out", help="the shared walkers directory (default walkers_out)")
    wk.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    wk.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    wk.set_defaults(func=commands.walkers_command)


def build_parser():
    parser = _Parser(prog="cvlearn", description="Learn collective variables, bias them, "
                                     "and estimate free energy surfaces. Units: nm, ps, kJ/mol, K.")
    parser.add_argument("--version", action="version", version=f"cvlearn {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also CVLEARN_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    qs = sub.add_parser("quickstart", help="The whole loop on Muller-Brown in about a minute (the main job).",
                        description=commands.quickstart_command.__doc__)
    qs.add_argument("--out", default="quickstart_out", help="output directory (default: quickstart_out)")
    qs.add_argument("--steps", type=POSITIVE_INT, default=25000,
                    help="metadynamics steps of 5 fs per walker, a multiple of 5 (default 25000 = 125 ps)")
    qs.add_argument("--walkers", type=POSITIVE_INT, default=8, help="walkers sharing the bias (default 8)")
    qs.add_argument("--method", choices=METHODS, default="tica",
                    help="CV learner: tica (default), pca (the variance baseline), deeptica, tae (time-lagged "
                    "autoencoder) or autoencoder")
    qs.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    qs.add_argument("--resume", action="store_true",
                    help="continue an interrupted run in --out from its checkpoint, HILLS and COLVAR files (same "
                    "--method, --seed and --walkers; --steps may grow)")
    qs.add_argument("--no-progress", action="store_true", help="hide progress bars")
    qs.set_defaults(func=commands.quickstart_command)
    demo = sub.add_parser("demo", help="Simulate the 10-D hidden double well and compare PCA with TICA.",
                          description=commands.demo_command.__doc__)
    demo.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    demo.add_argument("--steps", type=POSITIVE_INT, default=20000, help="Langevin steps of 0.02 ps (default 20000)")
    demo.add_argument("--walkers", type=POSITIVE_INT, default=16, help="independent walkers (default 16)")
    demo.add_argument("--dim", type=POSITIVE_INT, default=10, help="dimension of the hidden system (default 10)")
    demo.add_argument("--barrier", type=POSITIVE, default=10.0, help="double-well barrier, kJ/mol (default 10)")
    demo.add_argument("--seed", type=COUNT, default=0, help="random seed (default 0)")
    demo.set_defaults(func=commands.demo_command)
    _add_molecular_commands(sub)
    _add_iterate_command(sub)
    _add_walkers_command(sub)
    for command in {id(p): p for p in sub.choices.values()}.values():
        _add_common_options(command)
    parser.commands = sub.choices  # by name (aliases included), for the checks that span options
    return parser


def _add_common_options(command):
    """--force for every command with --out, and --debug (also accepted after the command's name)."""
    if any("--out" in a.option_strings for a in command._actions):
        command.add_argument("--force", action="store_true",
                             help="when --out holds an earlier run (or file) and --resume is not given: keep it in "
                             "OUT/bck.<n>/ (a file as bck.<n>.<name>) and start anew; never deletes anything")
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the traceback of an error (also CVLEARN_DEBUG=1)")


def _version():
    from ._version import __version__

    return __version__


def main(argv=None):
    """Run ``cvlearn`` with ``argv``; a mistake is one line on stderr and exit status 2 (--debug: the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_together(parser.commands[args.command], args)
    debug = args.debug or os.environ.get("CVLEARN_DEBUG", "") not in ("", "0")
    try:
        with _Notices(args.command):
            return args.func(args)
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"cvlearn {args.command}: {exc}", file=sys.stderr)
        return 2


class _Notices:
    """What a run says as it goes (resumed from where, what it kept aside, that it compiles): the INFO lines
    of the workflows and of the engine's compilation (the ``cvlearn.app`` and ``cvlearn.engine`` loggers), on
    stderr. ``cvlearn iterate`` prints its own progress."""

    def __init__(self, command):
        self.handler = None
        if command != "iterate":
            self.handler = logging.StreamHandler(sys.stderr)
            self.handler.setFormatter(logging.Formatter(f"cvlearn {command}: %(message)s"))
            self.handler.addFilter(lambda record: record.name in ("cvlearn.app", "cvlearn.engine"))
        self.logger = logging.getLogger("cvlearn")

    def __enter__(self):
        if self.handler is not None:
            self.level = self.logger.level
            self.logger.setLevel(logging.INFO)
            self.logger.addHandler(self.handler)

    def __exit__(self, *exc):
        if self.handler is not None:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.level)


if __name__ == "__main__":
    sys.exit(main())
