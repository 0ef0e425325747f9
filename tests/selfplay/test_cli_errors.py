"""What a user can type gets a one-line error, never a traceback: bad flags, bad files, a full
disk, a read-only file system, a closed pipe. Each test names the input."""

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from puzzles.format import content_hash, parse_puzzle
from puzzles.store import Store
from selfplay.cli import build_parser, environment_error, main
import selfplay.cli.eval
import selfplay.cli.run
from selfplay.cli.run import EXPORT_FIELDS
from selfplay.config import config_toml, preset
from test_cards import hand_built_run

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"name": "good", "family": "arith", "split": "train",
        "puzzle": "def f(x: int, a=5):\n    return x * 2 == a * 4",
        "solutions": ["def g(a=5):\n    return a * 2"]}


def error_line(capsys) -> str:
    """stderr, which must be one `selfplay: error:` line and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("selfplay: error:")]
    assert len(lines) == 1, err
    return lines[0]


def cli(*args, **kw) -> subprocess.CompletedProcess:
    """`python -m selfplay ARGS` from this checkout, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "selfplay", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kw)


def a_run(path: Path) -> Path:
    """A run directory with a config and a store holding one puzzle, no model needed."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.toml").write_text(config_toml(preset("tiny")))
    with Store(path / "store.sqlite") as store, store.transaction():
        store.add_puzzle(parse_puzzle(GOOD["puzzle"], name="good", family="arith",
                                      split="train"), "imported")
        store.mark_stage_done(0, "seed", {"puzzles": 1})
    return path


# -- the machine: full disk, read-only file system -----------------------------------------

@pytest.mark.parametrize("exc, says", [
    (OSError(errno.ENOSPC, "No space left on device", "/run/rounds/r1/x"), "disk is full"),
    (sqlite3.OperationalError("database or disk is full"), "disk is full"),
    (RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0"),
     "disk is full"),
    (Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
               '"No space left on device" })'), "disk is full"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/log.txt"), "/ro/log.txt is on a "
                                                                   "read-only file system"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "cannot be opened or "
                                                                       "written"),
])
def test_a_full_disk_or_read_only_file_system_is_one_line(tmp_path, monkeypatch, capsys, exc,
                                                           says):
    run = a_run(tmp_path / "run")

    def status(path):
        try:
            raise exc
        except Exception as e:  # as torch and sqlite raise them: wrapped by a later error
            raise RuntimeError("while writing") from e
    monkeypatch.setattr(selfplay.cli.run.loop, "status", status)
    assert main(["status", str(run)]) == 1
    assert says in error_line(capsys)


def test_a_bug_keeps_its_traceback():
    assert environment_error(KeyError("x")) is None
    assert environment_error(RuntimeError("shape mismatch")) is None
    assert environment_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) is None


def _in_namespace(script: str) -> subprocess.CompletedProcess:
    """`script` run as root of a private user and mount namespace, where mounts are free."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1)")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip("user namespaces are not available here")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def test_a_real_full_disk_is_one_line(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # A 16 KiB tmpfs: the seed corpus does not fit.
    out = _in_namespace(f"mount -t tmpfs -o size=16k tmpfs {disk} && {sys.executable} -m "
                        f"selfplay puzzles export --out {disk}/seeds.jsonl")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "selfplay: error: the disk is full (No space left on device" in out.stderr


def test_a_store_on_a_read_only_file_system_reads_and_refuses_writes_in_one_line(tmp_path):
    run = a_run(tmp_path / "run")
    py = f"{sys.executable} -m selfplay"
    out = _in_namespace(
        f"mount --bind {run} {run} && mount -o remount,bind,ro {run} && "
        f"{py} status {run}; echo rc=$?; {py} puzzles list --store {run}/store.sqlite; "
        f"echo rc=$?; {py} export {run} --out {run}/out.jsonl; echo rc=$?; "
        f"{py} init {run}/new; echo rc=$?")
    assert "Traceback" not in out.stderr
    assert "is not a selfplay store" not in out.stderr
    assert "rounds done: 0 of 2" in out.stdout
    assert "1 puzzles in 1 families" in out.stdout
    assert out.stdout.count("rc=0") == 2 and out.stdout.count("rc=1") == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("selfplay: error:")]
    assert len(errors) == 2 and all("read-only file system" in e for e in errors)
    assert f"{run}/new" in errors[1]


def test_a_store_that_cannot_be_written_opens_read_only(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    with Store(path) as store, store.transaction():
        store.add_puzzle(parse_puzzle(GOOD["puzzle"], name="good"), "imported")
    # Root passes every permission check, so the read-only folder is what access() says.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK
                        else real_access(p, mode))
    with Store(path) as store:
        assert store.read_only
        assert [sp.puzzle.name for sp in store.puzzles()] == ["good"]
        with pytest.raises(SelfplayError, match="s.db is read-only"):
            with store.transaction():
                pass
    monkeypatch.undo()
    with Store(path) as store:
        assert not store.read_only and len(store.puzzles()) == 1


def test_a_closed_pipe_ends_quietly():
    # `selfplay puzzles list | head -1`: the reader is gone before the first line is written.
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run([sys.executable, "-m", "selfplay", "puzzles", "list"], cwd=ROOT,
                             stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert out.stderr == ""
    assert out.returncode == 141  # 128 + SIGPIPE, as a shell reports a tool a pipe stopped


# -- flags and files a user can type -------------------------------------------------------

@pytest.mark.parametrize("flags, says", [
    (["--max-problems", "-3"], "--max-problems must be at least 0, not -3"),
    (["--round", "-1"], "--round must be at least 0, not -1"),
    (["--n", "0"], "--n must be at least 1, not 0"),
    (["--k", "0,1"], "--k takes whole numbers of at least 1"),
])
def test_eval_refuses_bad_numbers_before_loading_anything(tmp_path, monkeypatch, capsys,
                                                          flags, says):
    monkeypatch.setattr(selfplay.cli.eval, "eval_run",
                        lambda *a, **k: pytest.fail("evaluated"))
    assert main(["eval", str(tmp_path), *flags]) == 1
    assert says in error_line(capsys)


def test_eval_set_flag_of_old_scripts_is_refused_by_name(tmp_path, monkeypatch, capsys):
    # `--set` is KEY=VALUE on every other verb; an old `selfplay eval --set heldout` is told
    # the new flag instead of being read as something else.
    monkeypatch.setattr(selfplay.cli.eval, "eval_run",
                        lambda *a, **k: pytest.fail("evaluated"))
    assert main(["eval", str(tmp_path), "--set", "heldout"]) == 1
    assert "selfplay eval names its eval set with --eval-set (--eval-set heldout)" in (
        error_line(capsys))


def test_eval_of_an_empty_set_is_an_error_not_a_score(tmp_path, monkeypatch, capsys):
    def empty(*a, **k):
        return {"round": 0, "set": "empty.jsonl", "rejected": [], "metric": {
            "pass_at_k": {}, "problems": 0, "samples": 4, "solved": 0, "leaked": 0,
            "too_long": 0}}
    monkeypatch.setattr(selfplay.cli.eval, "eval_run", empty)
    assert main(["eval", str(tmp_path), "--eval-set", "empty.jsonl"]) == 1
    assert "eval set empty.jsonl has no problems" in error_line(capsys)


def test_sample_of_a_binary_prompt_file(tmp_path, capsys):
    prompt = tmp_path / "prompt.bin"
    prompt.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert main(["sample", "--model", "tiny", "--prompt-file", str(prompt)]) == 1
    assert "is not UTF-8 text" in error_line(capsys)


@pytest.mark.parametrize("verb", [["run", "--preset", "tiny"], ["init"], ["status"]])
def test_a_file_where_a_run_directory_goes(tmp_path, capsys, verb):
    file = tmp_path / "notes.txt"
    file.write_text("mine\n")
    assert main([verb[0], str(file), *verb[1:]]) == 1
    assert f"{file} is a file, not a run directory" in error_line(capsys)
    assert file.read_text() == "mine\n"


def test_resume_refuses_a_store_truncated_to_nothing(tmp_path, capsys):
    run = a_run(tmp_path / "run")
    (run / "rounds" / "r1").mkdir(parents=True)
    (run / "cards").mkdir()
    (run / "store.sqlite").write_bytes(b"")
    assert main(["resume", str(run)]) == 1
    line = error_line(capsys)
    assert "store.sqlite is empty (0 bytes)" in line and "rounds/ and cards/" in line
    assert (run / "store.sqlite").stat().st_size == 0
    (run / "store.sqlite").unlink()
    assert main(["run", str(run)]) == 1
    assert "store.sqlite is missing" in error_line(capsys)
    assert not (run / "store.sqlite").exists()


@pytest.mark.parametrize("content, says", [
    (None, "no such file"),
    (b"\x00\xff\xfe binary \x80\n", "is not UTF-8 text"),
    (json.dumps({"puzzles": [GOOD]}, indent=1).encode(), "is one JSON object over"),
    (b"\n\n", "holds no puzzles"),
])
def test_puzzles_add_of_a_bad_file_creates_no_store(tmp_path, capsys, content, says):
    file, store = tmp_path / "in.jsonl", tmp_path / "s.db"
    if content is not None:
        file.write_bytes(content)
    assert main(["puzzles", "add", str(file), "--store", str(store)]) == 1
    line = error_line(capsys)
    assert says in line and str(file) in line
    assert not store.exists()


def test_puzzles_add_fails_when_every_record_is_rejected(tmp_path, capsys):
    file = tmp_path / "in.jsonl"
    file.write_text(json.dumps({"name": "bad", "puzzle": "def f(x: int) return x"}) + "\n"
                    + json.dumps({"name": "wrong", "puzzle": "def f(x: int):\n    return x == 4",
                                  "solutions": ["def g():\n    return 5"]}) + "\n")
    assert main(["puzzles", "add", str(file), "--store", str(tmp_path / "s.db"),
                 "--timeout", "2"]) == 1
    out = capsys.readouterr()
    assert "added 0 puzzles" in out.out and "(wrong): none of its reference" in out.out
    assert f"every record of {file} was rejected" in out.err and "Traceback" not in out.err


def test_a_p3_export_round_trips_split_and_family(tmp_path, capsys):
    store = tmp_path / "s.db"
    held = {"name": "held/one", "family": "held", "split": "heldout",
            "puzzle": "def f(s: str, n=3):\n    return len(s) == n",
            "solutions": ["def g(n=3):\n    return 'a' * n"]}
    loose = {"name": "loose", "family": "misc", "split": "none",
             "puzzle": "def f(x: int, b=2):\n    return x - b == 1"}
    file = tmp_path / "in.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in (GOOD, held, loose)))
    assert main(["puzzles", "add", str(file), "--store", str(store)]) == 0
    out = tmp_path / "p3" / "puzzles.json"
    out.parent.mkdir()
    assert main(["puzzles", "export", "--store", str(store), "--format", "p3",
                 "--out", str(out)]) == 0
    assert json.loads((out.parent / "split.json").read_text()) == {"train": ["arith"],
                                                                    "test": ["held"]}
    again = tmp_path / "again.db"
    assert main(["puzzles", "add", str(out), "--store", str(again)]) == 0
    capsys.readouterr()

    def rows(path):
        with Store(path) as s:
            return {sp.hash: (sp.puzzle.name, sp.puzzle.family, sp.puzzle.split,
                              sp.n_solutions)
                    for sp in s.puzzles()}
    assert rows(again) == rows(store)


# -- help -----------------------------------------------------------------------------------

def _actions(*path):
    parser = build_parser()
    for name in path:
        [sub] = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        parser = sub.choices[name]
    return parser, {opt: a for a in parser._actions for opt in a.option_strings}


@pytest.mark.parametrize("path, options", [
    (("sample",), ["--max-new-tokens", "--top-p", "--batch-size", "--device", "--dtype"]),
    (("verify",), ["--out"]),
    (("train",), ["--seed"]),
    (("puzzles", "list"), ["--split", "--family"]),
    (("puzzles", "export"), ["--split", "--family", "--format"]),
])
def test_every_option_has_help(path, options):
    _, actions = _actions(*path)
    assert all(actions[o].help for o in options)


def test_train_flags_are_the_train_and_lora_settings_and_reach_the_trainer(tmp_path,
                                                                          monkeypatch):
    # Generated from the dataclasses: a setting added to TrainConfig or LoraSettings is a
    # flag of `selfplay train` with no hand-written line, and what is given is what trains.
    import dataclasses

    import training.models
    import training.trainer
    from training.lora import LoraSettings
    from training.settings import TrainConfig

    from selfplay.config.toml import field_docs

    _, actions = _actions("train")
    for cls, skip in ((TrainConfig, {"processes"}), (LoraSettings, {"target_modules"})):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name not in skip:
                flag = "--" + f.name.replace("_", "-")
                assert flag in actions, flag
                assert actions[flag].help.startswith(docs[f.name].replace("%", "%%"))
                assert actions[flag].help.endswith(f"(default: {f.default})")
    assert actions["--lr"] is actions["--learning-rate"]
    seen = {}

    def fake_train(base, pairs, out, config, lora, **kwargs):
        seen.update(config=config, lora=lora)
        raise SelfplayError("stop here")

    monkeypatch.setattr(training.trainer, "train_adapter", fake_train)
    monkeypatch.setattr(training.models, "load_model", lambda config: None)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"puzzle": "def f(x: int):\n    return x == 1\n",
                                 "solution": "def g():\n    return 1\n"}) + "\n")
    assert main(["train", str(pairs), "--out", str(tmp_path / "out"), "--lr", "0.001",
                 "--warmup-ratio", "0.2", "--loss-on", "all", "--gradient-checkpointing",
                 "--mixed-precision", "no", "--rank", "4"]) == 1
    assert seen["config"] == TrainConfig(learning_rate=0.001, warmup_ratio=0.2, loss_on="all",
                                         gradient_checkpointing=True, mixed_precision="no")
    assert seen["lora"] == LoraSettings(rank=4)


def test_sample_flags_are_the_model_and_sampling_settings_and_reach_the_sampler(
        tmp_path, monkeypatch, capsys):
    import dataclasses

    import training.models
    import training.sampling
    from training.settings import Completion, ModelConfig, SamplingConfig

    _, actions = _actions("sample")
    for flag in ("--model", "--device", "--dtype", "--threads", "--adapter", "--temperature",
                 "--top-p", "--max-new-tokens", "--batch-size", "--backend", "--sampling-dtype",
                 "--sampling-functions"):
        assert flag in actions and actions[flag].help, flag
    assert len({a.dest for a in actions.values()} & {f"sampling_{f.name}" for f in
                                                      dataclasses.fields(SamplingConfig)}) == len(
        dataclasses.fields(SamplingConfig))
    seen = {}
    monkeypatch.setattr(training.models, "load_model",
                        lambda config: seen.setdefault("model", config))

    def fake_sample(loaded, prompts, n, config, seed):
        seen["sampling"] = config
        return [[Completion("    return 1\n", "stop", 3)] * n]

    monkeypatch.setattr(training.sampling, "sample_completions", fake_sample)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("def f(")
    assert main(["sample", "--model", "tiny", "--prompt-file", str(prompt), "--n", "2",
                 "--top-p", "0.5", "--sampling-dtype", "bfloat16", "--threads", "1"]) == 0
    assert seen["model"] == ModelConfig(name="tiny", threads=1)
    assert seen["sampling"] == SamplingConfig(top_p=0.5, dtype="bfloat16")
    assert capsys.readouterr().out.count('"completion"') == 2


def test_help_shows_defaults():
    def help_text(*path):
        return " ".join(_actions(*path)[0].format_help().split())  # unwrapped
    text = help_text("sample")
    assert "(default: 256)" in text and "(default: 0.95)" in text
    assert "(default: None)" not in text and "(default: )" not in text
    assert "random seed (default 0) --" in text  # said once, by the help itself
    assert "(default: jsonl)" in help_text("puzzles", "export")


def test_export_help_documents_every_field_it_writes(tmp_path, capsys):
    run = tmp_path / "run"
    hand_built_run(run)
    out = tmp_path / "train.jsonl"
    assert main(["export", str(run), "--out", str(out)]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert [name for name, _ in EXPORT_FIELDS] == list(first)
    text = _actions("export")[0].format_help()
    assert all(f"  {name} " in text for name in first)


def test_a_missing_command_module_is_an_error_not_a_missing_verb(monkeypatch):
    # It used to be skipped silently: a verb whose module was deleted or misnamed vanished from
    # `selfplay --help` with no word.
    import selfplay.cli
    monkeypatch.setattr(selfplay.cli, "COMMAND_MODULES", selfplay.cli.COMMAND_MODULES + ("nope",))
    with pytest.raises(ModuleNotFoundError, match="selfplay.cli.nope"):
        build_parser()


def test_set_changes_a_new_config_and_is_refused_where_it_would_change_one(tmp_path, capsys):
    from selfplay.rundir import RunDir

    run = tmp_path / "run"
    assert main(["init", str(run), "--preset", "tiny", "--set", "solve.attempts=2",
                 "--set", 'eval.sets=["heldout"]']) == 0
    config = RunDir(run).load_config()
    assert config.solve.attempts == 2 and list(config.eval.sets) == ["heldout"]
    before = (run / "config.toml").read_text()
    capsys.readouterr()
    assert main(["run", str(run), "--set", "solve.attempts=3"]) == 1
    assert "solve.attempts: 2 -> 3" in capsys.readouterr().err
    assert (run / "config.toml").read_text() == before and not (run / "store.sqlite").exists()
    assert main(["run", str(tmp_path / "new"), "--preset", "tiny", "--set", "solve.nope=1"]) == 1
    assert "solve.nope" in capsys.readouterr().err and not (tmp_path / "new").exists()
    assert main(["run", str(tmp_path / "none"), "--set", "solve.attempts=1"]) == 1
    assert "give --preset too" in capsys.readouterr().err
