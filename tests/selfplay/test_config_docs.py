"""docs/config.md is generated from the config dataclasses and kept current."""

from selfplay.config import docs


def test_docs_config_md_is_current():
    assert docs.DOC.read_text(encoding="utf-8") == docs.render(), (
        "docs/config.md is stale: run python -m selfplay.config.docs")


def test_every_key_of_the_config_has_a_documented_line():
    from selfplay.config import RunConfig, flat_settings

    text = docs.render()
    for key in flat_settings(RunConfig()):
        table, _, name = key.rpartition(".")
        section = text.split(f"## [{table}]\n", 1)[1].split("\n## ", 1)[0] if table else text
        line = next(l for l in section.splitlines() if l.startswith(f"| `{name}`"))
        assert line.rstrip(" |").split(" | ")[-1], f"{key} has no docstring"


def test_check_says_stale(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(docs, "DOC", tmp_path / "config.md")
    assert docs.main(["--check"]) == 1
    assert docs.main([]) == 0
    assert docs.main(["--check"]) == 0
    assert "stale" in capsys.readouterr().err
