import dataclasses
import tomllib

import pytest

from puzzles.errors import SelfplayError
from selfplay.config import (RunConfig, config_toml, fingerprint, load_config, preset)
from selfplay.rundir import RunDir, check_fingerprint, init_run


def test_written_config_documents_every_key_and_loads_back(tmp_path):
    config = preset("tiny")
    text = config_toml(config)
    assert "# k: solutions sampled per puzzle" in text
    for section in ("model", "propose", "filter", "dedup", "solve", "verifier", "select",
                    "lora", "train", "eval"):
        assert f"[{section}]" in text
    (tmp_path / "c.toml").write_text(text)
    assert load_config(tmp_path / "c.toml") == config
    # Every key line is preceded by a comment.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), line


def test_unknown_keys_and_bad_types_name_the_key_and_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[solve]\nattempst = 3\n")
    with pytest.raises(SelfplayError, match=r"c.toml: solve: unknown key 'attempst'"):
        load_config(path)
    path.write_text("[solve]\nattempts = 'many'\n")
    with pytest.raises(SelfplayError, match=r"solve.attempts: expected int"):
        load_config(path)
    path.write_text("[train]\nloss_on = 'everything'\n")
    with pytest.raises(SelfplayError, match="loss_on"):
        load_config(path)
    path.write_text("seed = [")
    with pytest.raises(SelfplayError, match="c.toml"):
        load_config(path)


def test_partial_config_takes_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("seed = 7\n[solve]\nattempts = 3\n")
    config = load_config(path)
    assert config.seed == 7 and config.solve.attempts == 3
    assert config.propose == RunConfig().propose


def test_fingerprint_ignores_free_settings_and_refuses_the_rest(tmp_path):
    config = preset("tiny")
    run = init_run(tmp_path / "run", config)
    check_fingerprint(run, config)
    more_rounds = dataclasses.replace(config, rounds=9)
    assert fingerprint(more_rounds) == fingerprint(config)
    check_fingerprint(run, more_rounds)
    changed = dataclasses.replace(config, solve=dataclasses.replace(config.solve, attempts=99))
    with pytest.raises(SelfplayError, match=r"solve.attempts: 4 -> 99"):
        check_fingerprint(run, changed)


def test_init_refuses_to_overwrite_a_run(tmp_path):
    init_run(tmp_path / "run", preset("tiny"))
    with pytest.raises(SelfplayError, match="already exists"):
        init_run(tmp_path / "run", preset("cpu"))
    assert tomllib.loads(RunDir(tmp_path / "run").config_file.read_text())["model"]["name"] == "tiny"


def test_settings_added_by_a_newer_version_do_not_block_resume(tmp_path):
    import json
    config = preset("tiny")
    run = init_run(tmp_path / "run", config)
    check_fingerprint(run, config)
    state = json.loads(run.state_file.read_text())
    del state["settings"]["verifier.timeout"]  # as if written before that setting existed
    state["fingerprint"] = "old"
    run.state_file.write_text(json.dumps(state))
    check_fingerprint(run, config)


def test_config_and_cli_import_without_torch():
    # `selfplay init`, `status` and every stage read the config: they must not pay for torch.
    import subprocess
    import sys
    from pathlib import Path

    code = ("import selfplay.config, selfplay.cli, sys; selfplay.cli.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch was imported by the config or the CLI'; "
            "import importlib, selfplay.loop, selfplay.stages as s; "
            "[importlib.import_module(f'selfplay.stages.{n}') for n in s.STAGES + ('eval', "
            "'card')]; assert 'torch' not in sys.modules, 'torch was imported by a stage module'")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
