"""scripts/gpu_payload.py: the offline GPU payload is cut into loads that each fit one command,
a load that does not fit fails the size check loudly, and on the machine the loads arrive one
per command: wheels the machine's Python lacks are unpacked (what it has is kept), the GGUF
parts are joined once all are there and their sha256 checked, a damaged part is refused.

The last test is the whole sequence on a clean Python holding only what the GPU machine has
(torch, transformers, peft, accelerate, tqdm, numpy): it runs where the payload is built
(`scripts/gpu_payload.sh build`) and $SELFPLAY_PAYLOAD_PYTHON names such a Python, else it
skips; it needs no network."""

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_payload.py"
MIB = 1 << 20


@pytest.fixture(scope="module")
def payload():
    spec = importlib.util.spec_from_file_location("gpu_payload", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_payload"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_payload"]


def _wheel(folder: Path, name: str, module: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{module}/__init__.py", "WHERE = 'payload'\n")
        z.writestr(f"{name}-1.0.dist-info/METADATA",
                   f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{name}-1.0.data/purelib/{module}_extra.py", "EXTRA = 1\n")
    return path


@pytest.fixture
def built(payload, tmp_path):
    """A payload of a 5 MiB stand-in GGUF file and two wheels, in loads of at most 2 MiB: one
    wheel this Python lacks, one named for a distribution it has (pytest)."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(os.urandom(5 * MIB + 12345))
    wheels = [_wheel(tmp_path / "w", "payload-probe", "payload_probe"),
              _wheel(tmp_path / "w", "pytest", "not_pytest")]
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    out = tmp_path / "here" / ".gpu-payload"
    manifest = payload._pack(out, wheels, gguf, digest, 2 * MIB, 64)
    return out, manifest, gguf


def _arrive(out: Path, there: Path, n: int) -> None:
    shutil.copytree(out / f"load-{n}", there / f"load-{n}")


def test_loads_fit_and_arrive_one_per_command(payload, built, tmp_path, capsys):
    out, manifest, gguf = built
    assert manifest["loads"] == 3  # 5 MiB and two small wheels in loads of 2 MiB
    for n in range(1, 4):
        size = sum(f.stat().st_size for f in (out / f"load-{n}").rglob("*") if f.is_file())
        assert size <= 2 * MIB + 4096  # the part and wheels fill it; the manifest is the rest
    there = tmp_path / "there" / ".gpu-payload"
    there.mkdir(parents=True)
    _arrive(out, there, 1)
    assert payload.unpack(there) is False
    said = capsys.readouterr().out
    assert "carry .gpu-payload/load-2, .gpu-payload/load-3 and run" in said
    assert "this Python has pytest" in said  # the machine's own copy is kept
    site = there / "site"
    assert (site / "payload_probe" / "__init__.py").is_file()
    assert (site / "payload_probe_extra.py").is_file()  # from the wheel's .data/purelib
    assert not (site / "not_pytest").exists()
    for n in (2, 3):
        _arrive(out, there, n)
    assert payload.unpack(there) is True
    joined = there / "model" / payload.SMOLLM2_GGUF
    assert joined.read_bytes() == gguf.read_bytes()
    env = (there / "env.sh").read_text()
    assert f"SELFPLAY_SMOLLM2_GGUF={joined.resolve()}" in env and str(site.resolve()) in env
    assert payload.unpack(there) is True  # again: nothing changes
    assert "joined before" in capsys.readouterr().out


def test_a_damaged_part_is_refused_naming_it(payload, built, tmp_path):
    out, manifest, _ = built
    there = tmp_path / "there"
    for n in range(1, manifest["loads"] + 1):
        _arrive(out, there, n)
    part = there / "load-2" / f"{payload.SMOLLM2_GGUF}.part-2"
    data = bytearray(part.read_bytes())
    data[100] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(payload.PayloadError, match=r"part-2 in load-2 is damaged"):
        payload.unpack(there)
    assert not (there / "model" / payload.SMOLLM2_GGUF).exists()


def test_p3_files_travel_in_load_1_and_arrive_in_p3(payload, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "puzzles.json").write_text('[{"name": "A:0", "sat": "def sat(x: int): ..."}]')
    (data / "split.json").write_text('{"train": [], "test": ["A"]}')
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(os.urandom(3 * MIB))
    out = tmp_path / "here" / ".gpu-payload"
    manifest = payload._pack(out, [], gguf, hashlib.sha256(gguf.read_bytes()).hexdigest(),
                             2 * MIB, 64, files=payload.p3_files(data))
    assert [(r["load"], r["file"]) for r in manifest["files"]] == [
        (1, "p3/puzzles.json"), (1, "p3/split.json")]
    there = tmp_path / "there" / ".gpu-payload"
    there.mkdir(parents=True)
    _arrive(out, there, 1)
    damaged = there / "load-1" / "p3" / "split.json"
    damaged.write_text('{"train": ["A"], "test": []}')
    with pytest.raises(payload.PayloadError, match=r"p3/split.json in load-1 is damaged"):
        payload.unpack(there)
    shutil.rmtree(there / "load-1")
    _arrive(out, there, 1)
    assert payload.unpack(there) is False  # the GGUF's second part is still to come
    _arrive(out, there, 2)
    assert payload.unpack(there) is True
    for name in payload.P3_FILES:
        assert (there / "p3" / name).read_bytes() == (data / name).read_bytes()
    with pytest.raises(payload.PayloadError, match=r"--p3 .*: no split.json there"):
        (data / "split.json").unlink()
        payload.p3_files(data)


def test_the_size_check_fails_loudly_naming_the_load_over(payload, built, capsys):
    out, _, _ = built
    tree = payload.tree_bytes() / MIB
    payload.check(out, limit_mib=tree + 2.1)  # every load fits with the tree beside it
    with pytest.raises(payload.PayloadError, match=r"over the .* MiB one command carries: "
                                                   r"load-1 by"):
        payload.check(out, limit_mib=tree + 1)
    assert "OVER" in capsys.readouterr().out
    assert payload.main(["check", "--out", str(out), "--limit-mib", "1"]) == 1


def test_build_refuses_a_gguf_that_is_not_smollm2s(payload, tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF not the one")
    (tmp_path / "wheels").mkdir()
    with pytest.raises(payload.PayloadError, match=r"fake.gguf has sha256 .* not that of"):
        payload.build(tmp_path / "out", python_version="3.12", platform=None, extras=[],
                      limit_mib=64, gguf=fake, wheels_dir=tmp_path / "wheels")


CLEAN = os.environ.get("SELFPLAY_PAYLOAD_PYTHON")


@pytest.mark.slow
@pytest.mark.skipif(not CLEAN or not list((ROOT / ".gpu-payload").glob("load-*")),
                    reason="needs a built payload (scripts/gpu_payload.sh build) and "
                           "$SELFPLAY_PAYLOAD_PYTHON: a Python with only the GPU machine's "
                           "packages")
def test_dry_run_on_a_clean_python(tmp_path):
    # The tree as a command carries it, then each load in its own "command".
    there = tmp_path / "tree"
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    for name in set(listed.decode().split("\0")) - {""}:
        if (ROOT / name).is_file():
            (there / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, there / name)
    loads = sorted((ROOT / ".gpu-payload").glob("load-*"))
    env = {**os.environ, "SELFPLAY_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("SELFPLAY_SMOLLM2_GGUF", None)
    for i, load in enumerate(loads):
        shutil.copytree(load, there / ".gpu-payload" / load.name)
        done = subprocess.run([CLEAN, "scripts/gpu_payload.py", "unpack"], cwd=there, env=env,
                              capture_output=True, text=True)
        assert done.returncode == (0 if i == len(loads) - 1 else 3), done.stdout + done.stderr
    check = subprocess.run(
        [CLEAN, "bench/gpu_check.py", "--payload", ".gpu-payload", "--cpu-only", "--models",
         "smollm2-135m", "--no-loop", "--cpu-tokens", "4", "--cpu-prompts", "1",
         "--cpu-samples", "1", "--greedy-prompts", "1", "--greedy-tokens", "4",
         "--train-pairs", "2"], cwd=there, env=env, capture_output=True, text=True,
        timeout=900)
    assert check.returncode == 0, check.stdout + check.stderr[-3000:]
    packages = next(line for line in check.stdout.splitlines() if line.startswith("packages"))
    for name in ("RestrictedPython", "gguf", "datasketch"):
        assert f"{name} " in packages and "(payload)" in packages
    assert "first loss" in check.stdout and "no check failed" in check.stdout
