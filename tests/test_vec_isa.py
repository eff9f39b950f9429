"""The vector-instruction probe of inductor, remembered across processes (cvlearn.engine._vec_isa)."""

import json
import sys

import pytest
import torch

pytest.importorskip("torch._inductor.cpu_vec_isa")
from torch._inductor import config, cpp_builder, cpu_vec_isa  # noqa: E402

from cvlearn.engine import _vec_isa  # noqa: E402


class Probe:
    """Stands in for inductor's probing ``valid_vec_isa_list``: answers ``verdict(claimed)`` and counts calls;
    ``__wrapped__`` is the real unprobed function (what the CPU claims)."""

    def __init__(self, verdict=lambda claimed: claimed):
        self.__wrapped__ = cpu_vec_isa.valid_vec_isa_list.__wrapped__
        self.verdict, self.calls = verdict, 0

    def __call__(self):
        self.calls += 1
        with config.patch({"cpp.vec_isa_ok": True}):
            return self.verdict(self.__wrapped__())


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A new process's view: no decision yet, an empty inductor cache directory, a counting probe."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_vec_isa, "_skip_probe", None)
    probe = Probe()
    monkeypatch.setattr(cpu_vec_isa, "valid_vec_isa_list", probe)
    return tmp_path / _vec_isa.MEMO, probe


def claimed():
    with config.patch({"cpp.vec_isa_ok": True}):
        return [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list.__wrapped__()]


def test_first_process_probes_and_remembers_the_next_skips(fresh, monkeypatch):
    memo, probe = fresh
    with _vec_isa.compile_context():
        assert config.cpp.vec_isa_ok is True  # the probing process compiles with the option too (one cache key)
    assert config.cpp.vec_isa_ok is not True
    assert probe.calls == 1
    [(key, verdict)] = json.loads(memo.read_text()).items()
    assert verdict == claimed() and len(key) == 64
    # The next process: the remembered verdict equals what the CPU claims, so no probe.
    monkeypatch.setattr(_vec_isa, "_skip_probe", None)
    with _vec_isa.compile_context():
        assert config.cpp.vec_isa_ok is True
    assert probe.calls == 1


def test_a_failed_set_leaves_inductor_probing(fresh):
    memo, probe = fresh
    probe.verdict = lambda isas: isas[1:]  # the first claimed set failed to build or load
    with _vec_isa.compile_context():
        assert config.cpp.vec_isa_ok is not True
    assert probe.calls == 1 and not memo.exists()


def test_another_key_or_a_stale_verdict_is_probed_again(fresh, monkeypatch):
    memo, probe = fresh
    memo.write_text(json.dumps({"other-torch-or-compiler": ["avx2"]}))
    with _vec_isa.compile_context():
        pass
    entries = json.loads(memo.read_text())
    assert probe.calls == 1 and entries["other-torch-or-compiler"] == ["avx2"] and len(entries) == 2
    # A remembered verdict that no longer matches the CPU's claim (another machine sharing the cache).
    key = next(k for k in entries if k != "other-torch-or-compiler")
    memo.write_text(json.dumps({key: ["not-a-vector-set"]}))
    monkeypatch.setattr(_vec_isa, "_skip_probe", None)
    with _vec_isa.compile_context():
        pass
    assert probe.calls == 2 and json.loads(memo.read_text())[key] == claimed()


def test_unreadable_memo_and_missing_compiler(fresh, monkeypatch):
    memo, probe = fresh
    memo.write_text("{not json")
    with _vec_isa.compile_context():
        pass
    assert probe.calls == 1 and json.loads(memo.read_text())
    monkeypatch.setattr(_vec_isa, "_skip_probe", None)
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", lambda: "/nonexistent/c++")
    with _vec_isa.compile_context():
        assert config.cpp.vec_isa_ok is not True  # nothing is known about this compiler: inductor decides
    assert probe.calls == 1


def test_the_key_changes_with_torch_and_compiler(fresh, monkeypatch):
    _, key, _ = _vec_isa._probe_inputs()
    assert _vec_isa._probe_inputs()[1] == key
    with monkeypatch.context() as m:
        m.setattr(cpp_builder, "get_cpp_compiler", lambda: sys.executable)  # another file
        assert _vec_isa._probe_inputs()[1] != key
    with monkeypatch.context() as m:
        m.setattr(torch, "__version__", torch.__version__ + "+other")
        assert _vec_isa._probe_inputs()[1] != key
