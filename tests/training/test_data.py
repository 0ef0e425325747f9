import json

import pytest
import torch

from puzzles.errors import SelfplayError
from training.data import (
    IGNORE_INDEX, Example, build_blocks, collate, example_completion, example_prompt, pack,
    read_pairs, tokenize_pair,
)

PUZZLE = "def f(x: int, a=3):\n    return x + a == 10\n"
SOLUTION = "def g(a=3):\n    return 10 - a\n"
PAIRS = [
    (PUZZLE, SOLUTION),
    ("def f(s: str, n=4):\n    return len(s) == n\n", "def g(n=4):\n    return 'a' * n\n"),
    ("def f(li: list[int]):\n    return sum(li) == 7 and len(li) == 2\n",
     "def g():\n    return [3, 4]\n"),
    ("def f(x: bool):\n    return x\n", "def g():\n    return True\n"),
]


def test_example_is_puzzle_then_solution_then_assert(tiny_model):
    tok = tiny_model.tokenizer
    example = tokenize_pair(tok, PUZZLE, SOLUTION)
    text = tok.decode(example.input_ids, skip_special_tokens=True)
    assert text == PUZZLE + "\n" + SOLUTION + "\nassert f(g())\n"
    assert example.input_ids[-1] == tok.eos_token_id


def test_examples_match_the_solved_examples_the_sampler_shows():
    from training.prompts import PromptConfig

    shown = PromptConfig().solved_example.format(puzzle=PUZZLE, solution=SOLUTION)
    assert example_prompt(PUZZLE) + example_completion(SOLUTION) == shown


def test_solution_loss_covers_exactly_the_completion(tiny_model):
    tok = tiny_model.tokenizer
    example = tokenize_pair(tok, PUZZLE, SOLUTION, loss_on="solution")
    target = [t for t, m in zip(example.input_ids, example.loss_mask) if m]
    assert tok.decode(target, skip_special_tokens=True) == example_completion(SOLUTION)
    assert target[-1] == tok.eos_token_id


def test_loss_on_all_covers_everything_but_the_first_token(tiny_model):
    example = tokenize_pair(tiny_model.tokenizer, PUZZLE, SOLUTION, loss_on="all")
    assert example.loss_mask[0] is False
    assert all(example.loss_mask[1:])


def test_unknown_loss_on_is_an_error(tiny_model):
    with pytest.raises(SelfplayError, match="loss_on"):
        tokenize_pair(tiny_model.tokenizer, PUZZLE, SOLUTION, loss_on="puzzle")


def _ex(n: int, start: int) -> Example:
    return Example(tuple(range(start, start + n)), (False,) + (True,) * (n - 1))


def test_packing_keeps_every_example_whole_and_restarts_positions():
    examples = [_ex(n, 100 * i) for i, n in enumerate([5, 9, 3, 7, 2, 6, 4])]
    packing = pack(examples, block_size=12, pad_id=0)
    found = []
    for block in packing.blocks:
        assert len(block.input_ids) == len(block.labels) == len(block.position_ids) == 12
        # Split the block where the position ids restart: each piece is one example or padding.
        starts = [i for i, p in enumerate(block.position_ids) if p == 0] + [12]
        for a, b in zip(starts, starts[1:]):
            if a >= block.n_tokens:
                assert set(block.input_ids[a:b]) == {0}
                assert set(block.labels[a:b]) == {IGNORE_INDEX}
            else:
                found.append(block.input_ids[a:b])
                assert block.labels[a] == IGNORE_INDEX  # never predicted from the previous one
    assert sorted(found) == sorted(e.input_ids for e in examples)
    assert packing.n_tokens == sum(len(e.input_ids) for e in examples)


def test_packing_wastes_little_on_padding(tiny_model):
    pairs = PAIRS * 100
    packing = build_blocks(tiny_model.tokenizer, pairs, block_size=512)
    assert packing.n_examples == len(pairs)
    assert packing.useful_share > 0.95


def test_examples_longer_than_a_block_are_dropped_and_counted():
    packing = pack([_ex(5, 0), _ex(20, 100), _ex(8, 200)], block_size=10, pad_id=0)
    assert packing.n_examples == 2 and packing.n_dropped == 1
    assert all(100 not in b.input_ids for b in packing.blocks)


def test_packed_examples_do_not_see_each_other(tiny_model):
    """Each example in a packed block gets the same logits as when it is alone."""
    tok, model = tiny_model.tokenizer, tiny_model.model
    packing = build_blocks(tok, PAIRS, block_size=512)
    assert len(packing.blocks) == 1
    block = collate(packing.blocks)
    with torch.no_grad():
        packed = model(input_ids=block["input_ids"], position_ids=block["position_ids"],
                       use_cache=False).logits[0]
        ids = block["input_ids"][0].tolist()
        pos = block["position_ids"][0].tolist()
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        for a, b in zip(starts, starts[1:]):
            if a >= packing.blocks[0].n_tokens:
                break
            alone = model(input_ids=torch.tensor([ids[a:b]])).logits[0]
            torch.testing.assert_close(packed[a:b], alone, atol=1e-5, rtol=1e-4)


def _write(tmp_path, lines):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_pairs_reads_puzzle_and_solution(tmp_path):
    path = _write(tmp_path, [json.dumps({"puzzle": p, "solution": s}) for p, s in PAIRS] + [""])
    assert read_pairs(path) == PAIRS


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: bad JSON"),
    (json.dumps({"puzzle": PUZZLE}), "line 2: missing key 'solution'"),
    (json.dumps({"puzzle": PUZZLE, "solution": 3}), "line 2: 'solution' must be a non-empty"),
    (json.dumps([PUZZLE, SOLUTION]), "line 2: expected an object"),
    (json.dumps({"puzzle": "x = 1\n", "solution": SOLUTION}), "line 2: .*only imports"),
    (json.dumps({"puzzle": PUZZLE, "solution": "def g():\n    return 7\n"}),
     "line 2: .*extra arguments"),
])
def test_read_pairs_names_the_bad_line(tmp_path, line, message):
    good = json.dumps({"puzzle": PUZZLE, "solution": SOLUTION})
    path = _write(tmp_path, [good, line, good])
    with pytest.raises(SelfplayError, match=message):
        read_pairs(path)


def test_read_pairs_of_missing_or_empty_file_is_an_error(tmp_path):
    with pytest.raises(SelfplayError, match="no such file"):
        read_pairs(tmp_path / "nope.jsonl")
    with pytest.raises(SelfplayError, match="no pairs"):
        read_pairs(_write(tmp_path, [""]))
