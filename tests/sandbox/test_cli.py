"""`selfplay verify` and `selfplay doctor` as a user runs them."""

import json

from selfplay.cli import main

PUZZLE = "def f(x: int):\n    return x == 4\n"


def test_verify_writes_one_verdict_per_line_in_order(tmp_path, capsys):
    lines = [
        json.dumps({"id": "a", "puzzle": PUZZLE, "solution": "def g():\n    return 4\n"}),
        "this is not json",
        "",
        json.dumps({"id": "b", "puzzle": PUZZLE}),
        json.dumps({"id": "c", "puzzle": PUZZLE, "solution": "def g():\n    return 5\n"}),
        json.dumps(["id", "puzzle", "solution"]),
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "verdicts.jsonl"
    assert main(["verify", str(pairs), "--out", str(out), "--timeout", "2",
                 "--workers", "1"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["verdict"]) for r in rows] == [
        ("a", "pass"), ("line:2", "rejected"), ("line:4", "rejected"), ("c", "fail"),
        ("line:6", "rejected")]
    assert set(rows[0]) == {"id", "verdict", "reason", "exception", "returned", "detail", "seconds"}
    assert rows[1]["detail"].startswith("line 2: bad JSON")
    assert rows[2]["detail"] == "line 4: missing solution"
    err = capsys.readouterr().err
    assert "line 2: bad JSON" in err and "5 verdicts" in err


def test_verify_names_a_missing_file(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_doctor_lists_layers_and_canaries(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("process", "rlimits", "landlock", "seccomp", "honest pair passes",
                 "fork is refused"):
        assert name in out


def test_doctor_with_layers_off_reports_the_written_file_and_removes_it(tmp_path,
                                                                        monkeypatch):
    import tempfile

    from sandbox import VerifierConfig
    from sandbox.doctor import diagnose
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the canary aims
    _, canaries = diagnose(VerifierConfig(disable_layers=("setuid", "namespaces", "landlock",
                                                          "seccomp")))
    [write] = [c for c in canaries if c.name.startswith("file write")]
    # The write succeeded: the canary fails, whatever the (re-run) verdict was.
    assert not write.ok and "the file was written" in write.detail
    assert not list(tmp_path.glob("selfplay-doctor-canary*"))
