"""The hooks registries (cvlearn.hooks): every public featurizer and CV module has each hook, or opts out with a
reason; and a featurizer defined outside cvlearn works in the lean path, export, saving and OPES by registering
its hooks, without touching cvlearn code."""

import inspect

import numpy as np
import pytest
import torch

import cvlearn as cl
from cvlearn import hooks
from cvlearn.engine._lean import Unsupported, compile_cv
from cvlearn.learners import CollectiveVariable, LinearCV, NeuralCV


def _public_modules(package):
    """torch modules named in ``package.__all__``, abstract bases (no forward of their own) left out."""
    for name in package.__all__:
        obj = getattr(package, name)
        if inspect.isclass(obj) and issubclass(obj, torch.nn.Module) and obj.forward is not torch.nn.Module.forward:
            yield obj


FEATURIZERS = list(_public_modules(cl.features))
CV_MODULES = list(_public_modules(cl.learners))


def test_discovery_finds_the_known_classes():
    # Guards the discovery itself: the walk below must not pass by finding nothing.
    assert {"Dihedrals", "Distances", "Contacts", "Positions", "AlignedPositions", "Concatenate"} <= {
        c.__name__ for c in FEATURIZERS}
    assert {"CollectiveVariable", "LinearCV", "NeuralCV"} <= {c.__name__ for c in CV_MODULES}
    assert cl.features.Featurizer not in FEATURIZERS


def _has(status, opt_out=None):
    """A hook registered, or the named opt-out with a reason."""
    if status == "registered":
        return True
    return opt_out is not None and status is not None and status.startswith(f"{opt_out}: ") and \
        len(status) > len(opt_out) + 4


@pytest.mark.parametrize("cls", FEATURIZERS, ids=lambda c: c.__name__)
def test_every_featurizer_has_every_hook(cls):
    found = hooks.hooks_of(cls)
    assert _has(found["lean"], "autograd only"), found
    assert _has(found["plumed"], "not exportable"), found
    assert _has(found["config"]), found
    assert _has(found["periodicity"]), found


@pytest.mark.parametrize("cls", CV_MODULES, ids=lambda c: c.__name__)
def test_every_cv_module_has_its_hooks(cls):
    # A CV module's PLUMED side is its TorchScript model (export.to_plumed), so only three concerns apply.
    found = hooks.hooks_of(cls)
    assert _has(found["lean"], "autograd only"), found
    assert _has(found["config"]), found
    assert _has(found["periodicity"]), found


def test_a_class_without_hooks_is_reported_missing(tmp_path):
    class Bare(cl.features.Featurizer):
        n_features = 1

        def forward(self, positions):
            return positions[..., 0, :1]

    assert hooks.hooks_of(Bare) == {"lean": None, "plumed": None, "config": None, "periodicity": None}

    class Angles(cl.features.Dihedrals):  # a subclass has its base's hooks, which may not fit: reported
        pass

    assert set(hooks.hooks_of(Angles).values()) == {"inherited from Dihedrals"}
    with pytest.raises(Unsupported, match="no lean step for Bare"):
        compile_cv(Bare())
    with pytest.raises(ValueError, match="Cannot write PLUMED actions for a Bare featurizer; exportable: .*Dihedrals"):
        cl.export.plumed_feature_lines(Bare())
    cv = CollectiveVariable(LinearCV([0.0], [[1.0]]), Bare())
    with pytest.raises(TypeError, match="Cannot save a Bare: it has no config hook"):
        cl.save(cv, tmp_path / "cv.pt")
    assert not (tmp_path / "cv.pt").exists()
    assert hooks.periodicity(Bare()) is False


def test_opt_outs_behave_as_registered():
    # Autograd only: the engine's compiler refuses with the reason (and the engine then uses autograd);
    # not exportable: the exporter raises the reason.
    contacts = cl.features.Contacts(pairs=[[0, 1]], r0=0.5)
    with pytest.raises(Unsupported, match="Contacts is computed with autograd"):
        compile_cv(CollectiveVariable(LinearCV([0.0], [[1.0]]), contacts))
    aligned = cl.features.AlignedPositions(np.eye(3))
    with pytest.raises(ValueError, match="FIT_TO_TEMPLATE"):
        cl.export.plumed_feature_lines(aligned)
    with pytest.raises(ValueError, match="Unknown module type 'Nothing'"):
        hooks.from_config({"type": "Nothing"})


# -- a featurizer from outside cvlearn, registering its own hooks ---------------------------------------------------
class Separation(cl.features.Featurizer):
    """The vector r_j - r_i (nm) between two atoms: three features."""

    n_features = 3

    def __init__(self, i, j):
        super().__init__()
        self.i, self.j = int(i), int(j)
        self.register_buffer("atoms", torch.tensor(sorted({self.i, self.j})))

    def feature_names(self):
        return [f"r{a}_{self.i}_{self.j}" for a in "xyz"]

    def forward(self, positions):
        return positions[..., self.j, :] - positions[..., self.i, :]


class _SeparationStep(hooks.FeatureStep):
    def __init__(self, m, rows):
        self.expect_atoms(rows, -1, max(m.i, m.j) + 1, "Separation")
        self.i, self.j = (int(r) for r in rows.rows([m.i, m.j], "Separation"))
        self.n_out = 3

    def forward(self, x):
        self.n = self.check(x).shape[0]
        return x[self.j] - x[self.i]

    def backward(self, g):
        out = np.zeros((self.n, 3))
        out[self.j] += g
        out[self.i] -= g
        return out


@hooks.lean_steps.register(Separation)
def _separation_lean(m, rows):
    return [_SeparationStep(m, rows)]


@hooks.plumed_lines.register(Separation)
def _separation_plumed(m, used):
    label = hooks.plumed_label(f"r_{m.i}_{m.j}", used)
    return [f"{label}: DISTANCE ATOMS={hooks.plumed_atoms(m.i, m.j)} COMPONENTS NOPBC"], \
        [f"{label}.{a}" for a in "xyz"]


hooks.register_config(Separation, lambda m: {"i": m.i, "j": m.j}, Separation)
hooks.periodicity.register(Separation)(hooks.not_periodic)


def _separation_cv(seed=0):
    feat = Separation(4, 14) | cl.features.Dihedrals(indices=[[4, 6, 8, 14]], n_atoms=22)
    torch.manual_seed(seed)
    net = NeuralCV(feat.n_features, [6], 1).double()
    for p in net.parameters():
        p.data.normal_(0.0, 0.5)
    return CollectiveVariable(net, feat)


def test_an_outside_featurizer_in_the_lean_path():
    cv = _separation_cv()
    assert hooks.hooks_of(Separation) == dict.fromkeys(["lean", "plumed", "config", "periodicity"], "registered")
    x = np.random.default_rng(0).normal(size=(22, 3))
    xt = torch.from_numpy(x)[None].requires_grad_(True)
    st = cv(xt)[0]
    (ref,) = torch.autograd.grad(st, xt, torch.tensor([0.7], dtype=torch.float64))
    atoms = np.array([4, 6, 8, 14])
    for lean, rows in ((compile_cv(cv), slice(None)), (compile_cv(cv, atoms=atoms), atoms)):
        np.testing.assert_allclose(lean.value(x[rows]), st.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(lean.vjp([0.7]), ref[0].numpy()[rows], rtol=1e-10, atol=1e-13)
    with pytest.raises(Unsupported, match="Separation reads atom 14, which is not among"):
        compile_cv(cv, atoms=np.array([4, 6, 8]))


def test_an_outside_featurizer_exports_saves_and_sets_periodicity(tmp_path):
    cv = _separation_cv()
    lines, labels = cl.export.plumed_feature_lines(cv.featurizer)
    assert lines == ["r_4_14: DISTANCE ATOMS=5,15 COMPONENTS NOPBC", "dih_4_6_8_14: TORSION ATOMS=5,7,9,15 NOPBC"]
    assert labels == ["r_4_14.x", "r_4_14.y", "r_4_14.z", "dih_4_6_8_14"]
    cl.save(cv, tmp_path / "cv.pt")
    back = cl.load(tmp_path / "cv.pt")
    assert isinstance(back.featurizer.parts[0], Separation) and back.featurizer.parts[0].j == 14
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 22, 3)))
    torch.testing.assert_close(back(x), cv(x), rtol=0, atol=0)
    opes = cl.OPES(Separation(0, 1), barrier=10.0, pace=10, temperature=300.0)
    assert not opes.domain.periodic.any()


def test_an_outside_featurizer_drives_the_openmm_force():
    pytest.importorskip("openmm")
    # The engine takes the lean path for the new class (no fallback to autograd), and both paths agree.
    runs = []
    for lean in (True, False):
        bias = cl.WellTemperedMetad(_separation_cv(), sigma=0.05, height=1.0, bias_factor=8, pace=50,
                                    grid=cl.Grid(-20, 20, 4000), outside="wall")
        eng = cl.engine.OpenMM.from_pdb(cl.data.alanine_dipeptide_pdb(), bias=bias, minimize=True, seed=1, lean=lean)
        assert (eng._groups[0].lean is not None) == lean
        runs.append(eng.run(300, stride=100))
    np.testing.assert_allclose(runs[0].positions, runs[1].positions, atol=1e-7)
