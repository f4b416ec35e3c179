"""tools/portable.py (`make test-portable`): its replays really change the arithmetic here,
and the caller's own numerical settings never leak into them."""
from __future__ import annotations

import portable


def test_a_replay_changes_what_this_machine_computes(capsys):
    assert portable.main(["--probe-only"]) == 0
    out = capsys.readouterr().out
    assert "PyTorch kernels DEFAULT" in out  # the first replay turns SIMD off


def test_the_callers_settings_do_not_leak_into_a_replay(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    env = portable.clean_environment()
    assert "ATEN_CPU_CAPABILITY" not in env and "OMP_NUM_THREADS" not in env
    replay = portable.probe({"OMP_NUM_THREADS": "1"})
    assert replay["threads"] == 1


def test_only_results_count_as_changes():
    native = {"capability": "AVX512", "threads": 2, "matmul": "a", "conv2d": "b"}
    assert portable.changed_operations(native, {**native, "capability": "AVX2", "threads": 1}) == []
    assert portable.changed_operations(native, {**native, "conv2d": "c"}) == ["conv2d"]
