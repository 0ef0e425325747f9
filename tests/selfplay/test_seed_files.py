"""seeds.files: a user's puzzle file (P3's train split, say) joins a run's store at round 0 as
human seeds; its other splits stay out, since they may be what the run is evaluated on."""

import dataclasses
import json
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from puzzles.generators import generate
from puzzles.records import PuzzleRecord, write_jsonl
from puzzles.store import Store
from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import run

P3 = Path(__file__).resolve().parents[3] / "shared" / "data" / "p3" / "puzzles.json"


def _run_with_files(tmp_path, files) -> Path:
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(config, seeds=dataclasses.replace(config.seeds, files=files))
    (path / "config.toml").write_text(config_toml(config))
    return path


def test_the_train_split_of_a_seed_file_is_stored_as_verified_human_seeds(tmp_path, tiny_model):
    drawn = generate(6, seed=3).records
    train, unsolved = drawn[:3], drawn[3]
    heldout = drawn[4]
    wrong = drawn[5]
    records = [*train,
               PuzzleRecord(unsolved.puzzle, []),
               PuzzleRecord(dataclasses.replace(heldout.puzzle, split="heldout"),
                            heldout.solutions),
               PuzzleRecord(wrong.puzzle, ["def g():\n    return None\n"])]
    file = tmp_path / "mine.jsonl"
    write_jsonl(records, file)
    path = _run_with_files(tmp_path, (str(file),))
    run(path, rounds=0)
    with Store(path / "store.sqlite") as store:
        imported = {sp.puzzle.name: sp for sp in store.puzzles(origin="imported")}
        assert store.stage_summary(0, "seed")["imported"] == 4
        assert set(imported) == {r.puzzle.name for r in train} | {unsolved.puzzle.name}
        assert all(imported[r.puzzle.name].n_solutions for r in train)
        assert imported[unsolved.puzzle.name].n_solutions == 0  # a target for the solver
        assert all(sp.puzzle.split == "train" for sp in imported.values())
        assert {s.origin for s in store.solutions()
                if s.puzzle_id in {sp.id for sp in imported.values()}} == {"imported"}
        assert not any(sp.puzzle.name == heldout.puzzle.name for sp in store.puzzles())
        # The one whose reference solution fails verification is not stored.
        assert not any(sp.puzzle.name == wrong.puzzle.name for sp in store.puzzles())


def test_a_missing_seed_file_is_named(tmp_path, tiny_model):
    path = _run_with_files(tmp_path, (str(tmp_path / "nope.json"),))
    with pytest.raises(SelfplayError, match=r"seeds.files: no such file: .*nope.json"):
        run(path, rounds=0)


@pytest.mark.skipif(not P3.exists(), reason="the P3 data set is not on this machine")
def test_p3_adds_only_its_train_split(tmp_path, tiny_model):
    from selfplay.corpus.importing import read_puzzle_file
    records, _ = read_puzzle_file(P3)
    train = [r for r in records if r.puzzle.split == "train"]
    test = {r.puzzle.hash for r in records if r.puzzle.split != "train"}
    # A small P3 file in P3's own format, split.json beside it: two train families, one test.
    items = json.loads(P3.read_text())
    split = json.loads((P3.parent / "split.json").read_text())
    chosen = {"train": split["train"][:2], "test": split["test"][:1]}
    kept = [i for i in items if i["name"].split(":")[0] in chosen["train"] + chosen["test"]]
    small = tmp_path / "p3"
    small.mkdir()
    (small / "puzzles.json").write_text(json.dumps(kept))
    (small / "split.json").write_text(json.dumps(chosen))
    path = _run_with_files(tmp_path, (str(small / "puzzles.json"),))
    run(path, rounds=0)
    with Store(path / "store.sqlite") as store:
        imported = {sp.puzzle.hash for sp in store.puzzles(origin="imported")}
    in_train = [i for i in kept if i["name"].split(":")[0] in chosen["train"]]
    assert len(imported) == len(in_train) > 0
    assert not imported & test
    assert imported <= {r.puzzle.hash for r in train}


def test_withheld_imports_are_solvable_targets_and_every_problem_keeps_an_example():
    from selfplay.corpus.importing import choose_withheld, problem_of
    drawn = generate(40, seed=5).records
    # Three problems of several instances each, one of a single instance, one unsolved.
    records = []
    for i, r in enumerate(drawn[:31]):
        name = f"P{i % 3}:{i}" if i < 30 else "Lone:0"
        records.append(PuzzleRecord(dataclasses.replace(r.puzzle, name=name), r.solutions))
    records.append(PuzzleRecord(dataclasses.replace(drawn[31].puzzle, name="P0:99"), []))
    withheld = choose_withheld(records, 0.5, seed=1)
    assert len(withheld) == round(0.5 * 31)
    assert "Lone:0" not in withheld and "P0:99" not in withheld
    solved_left = {problem_of(r.puzzle.name) for r in records
                   if r.solutions and r.puzzle.name not in withheld}
    assert solved_left == {"P0", "P1", "P2", "Lone"}
    assert choose_withheld(records, 0.5, seed=1) == withheld  # seeded
    assert choose_withheld(records, 0.5, seed=2) != withheld


def test_seeds_files_withheld_stores_that_share_unsolved(tmp_path, tiny_model):
    drawn = generate(8, seed=4).records
    records = [PuzzleRecord(dataclasses.replace(r.puzzle, name=f"Same:{i}"), r.solutions)
               for i, r in enumerate(drawn)]
    file = tmp_path / "mine.jsonl"
    write_jsonl(records, file)
    path = _run_with_files(tmp_path, (str(file),))
    config = load_config(path / "config.toml")
    (path / "config.toml").write_text(config_toml(dataclasses.replace(
        config, seeds=dataclasses.replace(config.seeds, files_withheld=0.5))))
    run(path, rounds=0)
    with Store(path / "store.sqlite") as store:
        imported = store.puzzles(origin="imported")
        unsolved = [sp for sp in imported if sp.n_solutions == 0]
        assert len(imported) == 8 and len(unsolved) == 4
        assert all(sp.provenance.get("reference_withheld") for sp in unsolved)


def test_a_bad_withheld_share_is_refused_by_name():
    from selfplay.config import SeedsConfig
    with pytest.raises(SelfplayError, match=r"seeds.files_withheld must be in \[0, 1\), not 1.5"):
        SeedsConfig(files_withheld=1.5)
