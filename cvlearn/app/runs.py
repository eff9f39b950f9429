"""Run folders and long runs: claim an output without losing an earlier run, run an engine in chunks with
a checkpoint after each, resume from it, and show one progress bar for the whole run.

Every command that writes a folder claims it with :func:`claim_output` (a file with :func:`claim_file`);
the commands that run long (``simulate``, ``bias``, ``quickstart``) run through :func:`run_in_chunks`
and continue with :func:`resume_from`.
"""

import hashlib
import json
import logging
import os
import re

import numpy as np

from ..exceptions import CVLearnError
from ..io import truncate_after, write_text_atomic

__all__ = ["RunFolderError", "SETTINGS", "claim_output", "claim_file", "file_identity", "checkpoint_step",
           "resume_from", "run_in_chunks", "RunProgress"]

log = logging.getLogger("cvlearn.app")


class RunFolderError(CVLearnError, ValueError):
    """An output that a run must not use as it stands: it holds another run (pass ``resume`` or
    ``force``), ``resume`` asks to continue a run with other settings, or with fewer steps than done.

    Examples
    --------
    >>> from cvlearn.app import RunFolderError, claim_file
    >>> _ = open("cv.pt", "w").write("a CV")
    >>> try:
    ...     claim_file("cv.pt")
    ... except RunFolderError as exc:
    ...     print(exc)
    --out cv.pt already exists: pass --force to keep it as bck.<n>.cv.pt and write a new one, or choose another --out.
    """


#: Where a run records the settings it started with; ``resume`` compares them with the new call's.
SETTINGS = "settings.json"
_BACKUP = re.compile(r"bck\.\d+(\..+)?")  # bck.<n>/ (a whole earlier run) and PLUMED's bck.<n>.<file>


def _previous_run(out):
    """Names in ``out`` left by an earlier run: everything except the backups of earlier ones."""
    if not os.path.isdir(out):
        return []
    return sorted(name for name in os.listdir(out) if not _BACKUP.fullmatch(name))


def _free_backup(head, name=""):
    """The first ``bck.<n>`` (folder) or ``bck.<n>.<name>`` (file) in ``head`` that does not exist."""
    n = 0
    while os.path.exists(os.path.join(head, f"bck.{n}" + (f".{name}" if name else ""))):
        n += 1
    return os.path.join(head, f"bck.{n}" + (f".{name}" if name else ""))


def _back_up_run(out, names):
    """Move ``names`` (the whole earlier run) into ``out/bck.<n>/``, together: a CV stays with its HILLS."""
    dest = _free_backup(out)
    os.makedirs(dest)
    for name in names:
        os.replace(os.path.join(out, name), os.path.join(dest, name))
    return dest


def _listing(names, n=4):
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _read_settings(out):
    try:
        with open(os.path.join(out, SETTINGS)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _as_json(value):
    return json.loads(json.dumps(value))


def _comparable(value):
    """A setting as compared on resume: a described file (CV, structure) by its content, not its path."""
    return {k: v for k, v in value.items() if k != "file"} if isinstance(value, dict) else value


def _describe(value):
    if isinstance(value, dict) and "sha256" in value:
        extra = ", ".join(f"{k} {v}" for k, v in value.items() if k not in ("file", "sha256") and v is not None)
        return f"{value.get('file')} ({extra + ', ' if extra else ''}sha256 {value['sha256']})"
    return json.dumps(value)


def _check_same_settings(out, saved, settings):
    """Refuse to continue the run in ``out`` with settings other than those it started with."""
    settings = _as_json(settings)
    if saved.get("command") != settings.get("command"):
        raise RunFolderError(f"--resume: {out} holds a run of cvlearn {saved.get('command')}, not of cvlearn "
                             f"{settings.get('command')}; choose the --out of a {settings.get('command')} run.")
    changed = [k for k in sorted(set(saved) | set(settings))
               if _comparable(saved.get(k)) != _comparable(settings.get(k))]
    if not changed:
        return
    what = "; ".join(f"--{k.replace('_', '-')}: the run has {_describe(saved.get(k))}, this call "
                     f"{_describe(settings.get(k))}" for k in changed)
    raise RunFolderError(f"--resume would mix two runs in {out}: {what}. Resume with the run's own settings, or start "
                         "a new run: another --out, or --force without --resume (keeps this one in "
                         f"{out}/bck.<n>/).")


def file_identity(path, **about):
    """A file as a run's settings record it: its path, what it is (``about``), and its content's SHA-256
    (first 16 hex digits), so that a resumed run recognises a moved file and refuses a changed one.

    Examples
    --------
    >>> from cvlearn.app.runs import file_identity
    >>> _ = open("cv.pt", "w").write("a CV")
    >>> file_identity("cv.pt", method="tica")
    {'file': 'cv.pt', 'method': 'tica', 'sha256': 'e3b960762e1354e1'}
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"file": os.fspath(path), **about, "sha256": digest.hexdigest()[:16]}


def claim_output(out, command, *, resume=False, force=False, settings=None, resumable=("checkpoint.npz",)):
    """Make the folder ``out`` the home of a run of ``command``, never losing or mixing an earlier one.

    Without ``resume`` the folder must be new or empty; an earlier run there is refused, or with
    ``force`` moved whole into ``out/bck.<n>/`` (its CV, HILLS, report and figures together). With
    ``resume`` the run recorded in ``out/settings.json`` must have the same ``settings`` (CV,
    grid, sigma, temperature...; steps may grow); a folder with nothing to resume starts a new run
    and says so. The settings of a new run are written to ``out/settings.json`` before any work.

    Parameters
    ----------
    out : str
        The output folder (created).
    command : str
        What runs there (``"bias"``, ``"quickstart"``...), recorded and compared with the settings.
    resume, force : bool
    settings : dict, optional
        JSON-serialisable settings that a resumed run must share (files as :func:`file_identity`).
    resumable : sequence of str
        Files that must all exist in ``out`` to continue the run from them.

    Returns
    -------
    bool
        True when the call continues the run in ``out`` from its files.

    Raises
    ------
    RunFolderError
        ``out`` is a file, holds another run (and neither ``resume`` nor ``force``), or ``resume``
        meets other settings.

    Examples
    --------
    >>> import os
    >>> from cvlearn.app import claim_output
    >>> claim_output("run", "bias", settings={"temperature": 300.0})
    False
    >>> _ = open("run/HILLS", "w").write("...")
    >>> claim_output("run", "bias", settings={"temperature": 300.0})
    Traceback (most recent call last):
        ...
    cvlearn.app.runs.RunFolderError: --out run already holds a run (HILLS, settings.json): pass --resume to ...
    >>> claim_output("run", "bias", force=True, settings={"temperature": 300.0}), sorted(os.listdir("run"))
    (False, ['bck.0', 'settings.json'])
    """
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"--out {out} is a file, not a folder: choose a folder name.")
    settings = None if settings is None else {"command": command, **settings}
    previous = _previous_run(out)
    if previous == [SETTINGS]:  # a run that stopped before it wrote anything (e.g. a wrong force field)
        previous = []
    saved = _read_settings(out) if previous else None
    found = bool(previous) and all(os.path.exists(os.path.join(out, f)) for f in resumable)
    if resume and saved is not None and settings is not None:
        _check_same_settings(out, saved, settings)
    if resume and (saved is not None or found):
        if saved is None:
            log.info("%s has no %s (an older cvlearn's run): continuing without checking its settings", out, SETTINGS)
        elif not found:
            log.info("%s holds no checkpoint yet (the run stopped before its first): starting it again", out)
    elif previous and not force:
        raise RunFolderError(_occupied(out, command, previous, resume))
    elif previous:
        log.info("Kept the earlier run of %s in %s", out, _back_up_run(out, previous))
        saved, found = None, False
    elif resume:
        log.info("Nothing to resume in %s: starting a new run", out)
    os.makedirs(out, exist_ok=True)
    if settings is not None and not (resume and saved is not None):
        write_text_atomic(os.path.join(out, SETTINGS), json.dumps(settings, indent=2))
    return bool(resume and found)


def _occupied(out, command, previous, resume):
    keep = f"--force to keep {'them' if resume else 'it'} in {out}/bck.<n>/ and start anew, or choose another --out."
    if resume:
        return f"--out {out} holds files ({_listing(previous)}) but no run of cvlearn {command} to resume: pass {keep}"
    return f"--out {out} already holds a run ({_listing(previous)}): pass --resume to continue it, {keep}"


def claim_file(path, *, force=False, option="--out"):
    """Check that a run may write the file ``path`` before it works: refuse an existing file (keep it as
    ``bck.<n>.<name>`` with ``force``) or a folder; create missing parent folders.

    Examples
    --------
    >>> import os
    >>> from cvlearn.app import claim_file
    >>> claim_file("models/cv.pt")
    'models/cv.pt'
    >>> _ = open("models/cv.pt", "w").write("a CV")
    >>> claim_file("models/cv.pt", force=True), sorted(os.listdir("models"))
    ('models/cv.pt', ['bck.0.cv.pt'])
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise RunFolderError(f"{option} {path} is a folder: give a file name (e.g. {os.path.join(path, 'cv.pt')}).")
    if os.path.exists(path):
        if not force:
            raise RunFolderError(f"{option} {path} already exists: pass --force to keep it as "
                                 f"bck.<n>.{os.path.basename(path)} and write a new one, or choose another {option}.")
        head, name = os.path.split(path)
        kept = _free_backup(head or ".", name)
        os.replace(path, kept)
        log.info("Kept the earlier %s as %s", path, kept)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def checkpoint_step(path):
    """The step at which the engine checkpoint ``path`` (.npz, ``save_checkpoint``) was written."""
    with np.load(path) as ck:
        return int(ck["step"])


def resume_from(out, checkpoint, timestep, steps, files=()):
    """Continue the run in ``out`` from its ``checkpoint`` (a file name in ``out``): refuse fewer ``steps``
    (in all) than done, drop the rows of the PLUMED ``files`` (COLVAR, HILLS: paths) written after it,
    and say so. ``timestep`` in ps. Returns the checkpoint's step.

    Examples
    --------
    >>> import os
    >>> import cvlearn as cl
    >>> from cvlearn.app.runs import resume_from
    >>> os.makedirs("md")
    >>> engine = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, n_walkers=1, seed=0)
    >>> frames = engine.run(200, stride=100, colvar="md/COLVAR")
    >>> _ = engine.save_checkpoint("md/checkpoint.npz")
    >>> _ = engine.run(100, stride=100, colvar="md/COLVAR", restart=True)    # killed before its checkpoint
    >>> resume_from("md", "checkpoint.npz", 0.005, 1000, ["md/COLVAR"]), cl.io.read_colvar("md/COLVAR")["time"]
    (200, array([0.5, 1. ]))
    """
    step = checkpoint_step(os.path.join(out, checkpoint))
    if steps < step:
        raise RunFolderError(f"{out} already holds {step} steps, more than --steps {steps}: pass --steps above {step} "
                             "to continue the run (its files are unchanged), or start a new one elsewhere.")
    if steps == step:
        log.info("%s already holds all %d steps: nothing left to run", out, steps)
    time = step * timestep
    dropped = {os.path.basename(f): truncate_after(f, time, timestep) for f in files}
    gone = ", ".join(f"{n} {name}" for name, n in dropped.items() if n) or "none"
    log.info("Resuming %s from %s at step %d (%g ps); rows written after it and discarded: %s",
             out, checkpoint, step, time, gone)
    return step


def run_in_chunks(engine, n_steps, per_chunk, save, checkpoint, *, stride, resume=False, colvar=None,
                  progress=False, desc="MD"):
    """Run ``engine`` up to a total of ``n_steps`` steps, ``per_chunk`` at a time; after each chunk call
    ``save(piece)`` (the chunk's Trajectory: write its frames) and then write the engine's ``checkpoint``
    (in that order: a checkpoint never points past saved frames, so an interrupted run loses at most one
    chunk). ``resume``: the engine was loaded from a checkpoint, so ``colvar`` (a PLUMED file) is
    continued rather than started anew. ``progress``: one bar (``desc``) over the whole run.

    Examples
    --------
    >>> import cvlearn as cl
    >>> from cvlearn.app.runs import run_in_chunks
    >>> engine = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, n_walkers=2, seed=0)
    >>> pieces = []
    >>> run_in_chunks(engine, 300, 100, pieces.append, "checkpoint.npz", stride=50)
    >>> [p.n_frames for p in pieces], engine.step, cl.app.runs.checkpoint_step("checkpoint.npz")
    ([2, 2, 2], 300, 300)
    """
    first = True
    with RunProgress(progress, n_steps, engine.step, desc=desc) as advance:
        while engine.step < n_steps:
            piece = engine.run(min(per_chunk, n_steps - engine.step), stride=stride, restart=resume or not first,
                               callback=advance, colvar=colvar)
            save(piece)
            engine.save_checkpoint(checkpoint)
            first = False
            log.debug("step %d / %d written, checkpoint %s", engine.step, n_steps, checkpoint)


class RunProgress:
    """One progress bar over a run of ``total`` steps made of many engine calls: ``advance(frame)``
    (an engine ``callback``) moves it to the frame's step. Nothing is shown when ``show`` is false.

    Examples
    --------
    >>> import cvlearn as cl
    >>> from cvlearn.app.runs import RunProgress
    >>> engine = cl.Langevin(cl.systems.MullerBrown(), timestep=0.005, n_walkers=1, seed=0)
    >>> with RunProgress(False, 200) as advance:
    ...     for _ in range(2):
    ...         _ = engine.run(100, stride=50, callback=advance)
    >>> engine.step
    200
    """

    def __init__(self, show, total, done=0, desc="MD"):
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="step", mininterval=0.5)

    def __call__(self, frame):  # a cvlearn.engine.Frame, from either engine
        if self.bar is not None:
            self.bar.update(int(frame.step) - self.bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
