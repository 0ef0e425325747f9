import dataclasses
import tomllib

import pytest

from puzzles.errors import SelfplayError
from selfplay.config import (FREE_TO_CHANGE, RunConfig, config_toml, fingerprint,
                             fingerprint_fields, load_config, preset)
from selfplay.config.toml import to_dict
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
    path.write_text("[generation]\ndtype = 'float8'\n")
    with pytest.raises(SelfplayError, match="generation.dtype = 'float8'"):
        load_config(path)
    path.write_text("[select]\nmin_human = -1\n")
    with pytest.raises(SelfplayError, match="select.min_human must be >= 0"):
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


def test_a_resume_may_move_to_ray_but_not_sample_on_another_device(tmp_path):
    # Where verdicts and chunks are computed does not change them; the device and the threads
    # a chunk is sampled with do, as model.device and model.threads would.
    config = preset("tiny")
    run = init_run(tmp_path / "run", config)
    check_fingerprint(run, dataclasses.replace(config, executor=dataclasses.replace(
        config.executor, kind="ray", actors=3, sampler_actors=2)))
    for change, key in ((dict(sampler_gpus=1.0), "sampler_gpus"), (dict(sampler_cpus=8),
                                                                    "sampler_cpus")):
        moved = dataclasses.replace(config, executor=dataclasses.replace(config.executor,
                                                                         **change))
        with pytest.raises(SelfplayError, match=f"executor.{key}"):
            check_fingerprint(run, moved)


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


def _flat_keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_the_header_documents_exactly_the_keys_the_guard_lets_change():
    text = config_toml(preset("tiny"))
    header = text[:text.index("\nseed = ")].splitlines()
    start = header.index("# Only these may change between a run and its resume:")
    documented = set()
    for line in header[start + 1:]:
        if not line.startswith("#   "):
            break
        documented.add(line[4:].split(":", 1)[0])
    assert documented == set(FREE_TO_CHANGE)
    # Every setting outside the documented keys is guarded, every one inside is not.
    guarded = set(fingerprint_fields(preset("tiny")))
    for key in _flat_keys(to_dict(preset("tiny"))):
        free = any(key == d or key.startswith(d + ".") for d in documented)
        assert (key not in guarded) == free, key
    # The header used to call batch size free; chunk seeds depend on it, so it is not.
    assert "generation.batch_size" in guarded and "batch size" not in text.split("seed = ")[0]


def test_every_free_setting_changes_no_fingerprint_and_any_other_does(tmp_path):
    config = preset("tiny")
    run = init_run(tmp_path / "run", config)
    check_fingerprint(run, config)
    free = dataclasses.replace(
        config, rounds=7, verifier=dataclasses.replace(config.verifier, workers=5),
        eval=dataclasses.replace(config.eval, sets=("heldout", "x.jsonl"), temperature=0.1,
                                 top_p=0.5, max_new_tokens=9, samples=2, k=(1,)),
        track=dataclasses.replace(config.track, trackers=("tensorboard",), dir="tb"))
    check_fingerprint(run, free)
    # The control arm's switch changes what trains: not free.
    control = dataclasses.replace(config, select=dataclasses.replace(config.select,
                                                                     synthetic=False))
    with pytest.raises(SelfplayError, match=r"select.synthetic: True -> False"):
        check_fingerprint(run, control)
    batch = dataclasses.replace(config, generation=dataclasses.replace(config.generation,
                                                                       batch_size=8))
    with pytest.raises(SelfplayError, match=r"generation.batch_size: 32 -> 8"):
        check_fingerprint(run, batch)
    # Thread count changes floating-point sums, hence the trained adapter: not free either.
    threads = dataclasses.replace(config, model=dataclasses.replace(config.model, threads=2))
    with pytest.raises(SelfplayError, match=r"model.threads: 0 -> 2") as refused:
        check_fingerprint(run, threads)
    # The refusal names what may change, from the same list as the guard and the header.
    assert "only " + ", ".join(FREE_TO_CHANGE) + " may change" in str(refused.value)


def test_eval_samples_with_its_own_settings_defaulting_to_what_it_borrowed_before():
    # Before eval had its own top_p and max_new_tokens it used the solve stage's: the defaults
    # (and each preset's values) are those, so runs measure as they did.
    assert (RunConfig().eval.top_p, RunConfig().eval.max_new_tokens) == \
        (RunConfig().solve.top_p, RunConfig().solve.max_new_tokens)
    for name in ("tiny", "cpu", "gpu"):
        config = preset(name)
        assert (config.eval.top_p, config.eval.max_new_tokens) == \
            (config.solve.top_p, config.solve.max_new_tokens), name


@pytest.mark.parametrize("text, key", [("top_p = 0.0", "eval.top_p"),
                                       ("top_p = 1.5", "eval.top_p"),
                                       ("max_new_tokens = 0", "eval.max_new_tokens"),
                                       ("temperature = -1.0", "eval.temperature")])
def test_bad_eval_sampling_names_the_key(tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(f"[eval]\n{text}\n")
    with pytest.raises(SelfplayError, match=key):
        load_config(path)


def test_a_run_config_refuses_a_starting_adapter_naming_the_key(tmp_path):
    # Rounds sample from the base plus their round's adapter, so a starting adapter would shape
    # round 0 and be dropped after: refused, with the way to use one (merge it into the base).
    path = tmp_path / "c.toml"
    path.write_text('[model]\nadapter = "some/adapter"\n')
    with pytest.raises(SelfplayError, match=r"c.toml: .*model.adapter = 'some/adapter'.*merge"):
        load_config(path)
    with pytest.raises(SelfplayError, match="model.adapter"):
        dataclasses.replace(preset("tiny"), model=dataclasses.replace(preset("tiny").model,
                                                                      adapter="a"))


@pytest.mark.parametrize("text, message", [
    ("rounds = -1", "rounds must be >= 0, not -1"),
    ("[propose]\nprompts = -3", "propose.prompts must be >= 0, not -3"),
    ("[propose]\nper_prompt = -2", "propose.per_prompt must be >= 1, not -2"),
    ("[propose]\nmax_new_tokens = 0", "propose.max_new_tokens must be >= 1, not 0"),
    ("[propose]\ntemperature = -1.0", "propose.temperature must be >= 0, not -1.0"),
    ("[propose]\ntop_p = 2.0", "propose.top_p must be in (0, 1], not 2.0"),
    ("[propose]\ntop_p = nan", "propose.top_p must be in (0, 1], not nan"),
    ("[solve]\nattempts = -4", "solve.attempts must be >= 1, not -4"),
    ("[solve]\nattempts = 0", "solve.attempts must be >= 1, not 0"),
    ("[solve]\nunsolved_train = -1", "solve.unsolved_train must be >= 0, not -1"),
    ("[eval]\nsamples = -1", "eval.samples must be >= 1, not -1"),
    ("[eval]\nk = [1, 100]\nsamples = 4", "eval.k must be in [1, 4] (eval.samples), not 100"),
    ("[eval]\nk = []", "eval.k is empty"),
    ("[eval]\nmax_problems = -3", "eval.max_problems must be >= 0, not -3"),
    ("[generation]\nbatch_size = 0", "generation.batch_size must be >= 1, not 0"),
    ("[generation]\nbackend = 'fast'", "generation.backend must be one of auto, transformers, "
                                       "vllm, not 'fast'"),
    ("[train]\nlearning_rate = 0", "train.learning_rate must be > 0, not 0.0"),
    ("[train]\nweight_decay = -0.1", "train.weight_decay must be >= 0, not -0.1"),
    ("[train]\nwarmup_ratio = 1.0", "train.warmup_ratio must be in [0, 1), not 1.0"),
    ("[lora]\nrank = 0", "lora.rank must be >= 1, not 0"),
    ("[lora]\nalpha = -8", "lora.alpha must be > 0, not -8.0"),
    ("[model]\ndtype = 'fp8'", "model.dtype must be one of auto, float32, bfloat16, float16, "
                               "not 'fp8'"),
    ("[model]\nthreads = -2", "model.threads must be >= 0, not -2"),
    ("[model]\nname = ''", "model.name is empty"),
    ("[prompts]\nsolve_examples = -1", "prompts.solve_examples must be >= 0, not -1"),
    ("[prompts]\nmax_prompt_tokens = 0", "prompts.max_prompt_tokens must be >= 1, not 0"),
    ("[prompts]\nsolved_example = '{puzzle} {answer}'", "prompts.solved_example = "),
    ('[prompts]\nsolve_target = "{header}\\n{puzzle}"',
     "prompts.solve_target = '{header}\\n{puzzle}' must end with {header}"),
    ("[seeds]\ngenerated = 3\nwithheld = 4", "seeds.withheld must be in [0, 3] (seeds.generated), "
                                          "not 4"),
    ("[dedup]\nnear_duplicate = 0.0", "dedup.near_duplicate must be in (0, 1], not 0.0"),
    ("[dedup]\ncontamination_ngram = 0", "dedup.contamination_ngram must be >= 1, not 0"),
    ("[select]\nmin_solve_rate = 0.5\nmax_solve_rate = 0.5",
     "select.max_solve_rate must be > 0.5 (select.min_solve_rate), not 0.5"),
    ("[select]\nhuman_share = 1.5", "select.human_share must be in [0, 1], not 1.5"),
    ("[verifier]\ntimeout = 0", "verifier.timeout must be > 0, not 0.0"),
    ("[verifier]\nbatch_size = 0", "verifier.batch_size must be >= 1, not 0"),
    ("[verifier]\ndisable_layers = ['selinux']", "verifier.disable_layers must be one of "
                                                 "setuid, namespaces, landlock, seccomp"),
    ("[audit]\nmin_puzzles = -1", "audit.min_puzzles must be >= 0, not -1"),
])
def test_a_value_out_of_range_is_refused_naming_key_range_and_value(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(SelfplayError) as refused:
        load_config(path)
    # One line: the file, then the key (not the table's name once more), range and value.
    assert str(refused.value).startswith(f"{path}: {message}"), str(refused.value)
    assert "\n" not in str(refused.value)


NEGATIVE_IS_FINE = {"seed", "train.seed"}
"""The only numbers a negative value is meaningful for: seeds, hashed into each stage's."""


def test_every_number_in_the_config_has_a_range():
    # A setting added later without a check fails here: a huge negative value of every int
    # and float setting must be refused (by the key's name).
    from selfplay.config import flat_settings, with_settings
    config = preset("tiny")
    for key, value in flat_settings(config).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key in NEGATIVE_IS_FINE:
            continue
        bad = -10**9 if isinstance(value, int) else -1e9
        with pytest.raises(SelfplayError, match=f"{key} must be"):
            with_settings(config, [f"{key}={bad}"])
