"""bench/gpu_check.py without CUDA: the CPU reference halves run and every GPU row says why it
was skipped, and skipped rows do not fail the exit code (tiny only, to stay cheap)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA behaviour")
def test_without_cuda_cpu_halves_run_and_gpu_rows_are_skipped(gpu_check, tiny_model, capsys):
    assert gpu_check.main(["--models", "tiny", "--no-loop", "--cpu-tokens", "8",
                           "--greedy-prompts", "2", "--greedy-tokens", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# GPU: no CUDA device; CPU: ")
    rows = [line for line in lines if line.startswith("tiny")]
    cpu = [r for r in rows if "  cpu  " in r]
    gpu = [r for r in rows if "  cuda  " in r]
    assert len(cpu) == 3 and len(gpu) == 4
    assert all(r.endswith("skipped: no CUDA device") for r in gpu)
    assert any("tok/s (" in r for r in cpu)  # the sampling figure
    assert any("(the reference)" in r for r in cpu)  # greedy completions kept to compare with
    assert any("first loss" in r for r in cpu)  # the LoRA step's loss
    assert "no check failed" in lines[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA behaviour")
def test_a_failing_part_is_a_fail_row_and_the_exit_code(gpu_check, tiny_model, capsys,
                                                        monkeypatch):
    def broken(check, name, device):
        def run(row):
            raise RuntimeError("boom\nsecond line")
        return run

    monkeypatch.setattr(gpu_check, "greedy", broken)
    assert gpu_check.main(["--models", "tiny", "--no-loop", "--cpu-tokens", "8"]) == 1
    out = capsys.readouterr().out
    assert "FAIL RuntimeError: boom" in out and "second line" not in out
    assert "first loss" in out  # the parts after the failure still ran
