"""The `bert-insight` command line: reproduce (papermill + nbconvert), model info/build."""

from __future__ import annotations

import json

import nbformat
import pytest

from bert_insight import cli


def write_notebook(path, body: str, parameters: str = "greeting = 'hi'\nrepeat = 2\nrate = 0.5\nloud = False"):
    cells = []
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    cells.append(nbformat.v4.new_code_cell(body))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def cell_text(notebook_path) -> str:
    notebook = nbformat.read(notebook_path, as_version=4)
    return "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))


@pytest.mark.notebook
def test_reproduce_substitutes_parameters_and_writes_notebook_and_html(tmp_path, capsys):
    source = write_notebook(tmp_path / "demo.ipynb",
                            "import sys\nprint('|'.join([greeting.upper() if loud else greeting] * repeat), rate)\n"
                            "print('python:', sys.executable)")
    runs = tmp_path / "runs"
    code = cli.main(["reproduce", str(source), "-p", "repeat", "3", "-p", "loud", "true", "-p", "rate", "1e-3",
                     "--output-dir", str(runs), "-q"])
    assert code == 0
    executed, html = runs / "demo" / "demo.ipynb", runs / "demo" / "demo.html"
    printed = capsys.readouterr().out
    assert str(executed) in printed and str(html) in printed
    text = cell_text(executed)
    assert "HI|HI|HI 0.001" in text
    import sys

    assert f"python: {sys.executable}" in text  # the kernel is this interpreter
    assert "HI|HI|HI 0.001" in html.read_text()
    assert nbformat.read(executed, as_version=4).metadata["kernelspec"]["name"] == "python3"


@pytest.mark.notebook
def test_failing_notebook_exits_nonzero_and_keeps_the_partial_run(tmp_path, capsys):
    source = write_notebook(tmp_path / "broken.ipynb", "print('before the error')\nraise RuntimeError('boom')")
    code = cli.main(["reproduce", str(source), "--output-dir", str(tmp_path / "runs"), "-q"])
    assert code == 1
    message = capsys.readouterr().err
    executed = tmp_path / "runs" / "broken" / "broken.ipynb"
    assert "RuntimeError" in message and "boom" in message and str(executed) in message
    assert "before the error" in cell_text(executed)
    assert (tmp_path / "runs" / "broken" / "broken.html").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["-p", "colour", "red"], "unknown parameter 'colour'"),
    (["-p", "2fast", "1"], "not a Python identifier"),
])
def test_bad_parameters_exit_2_with_one_line(tmp_path, capsys, arguments, message):
    source = write_notebook(tmp_path / "demo.ipynb", "print(greeting)")
    code = cli.main(["reproduce", str(source), "--output-dir", str(tmp_path / "runs"), *arguments])
    error = capsys.readouterr().err
    assert code == 2
    assert message in error and len(error.strip().splitlines()) == 1
    assert "greeting, loud, rate, repeat" in error or "identifier" in error
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_typed_parameter_mismatch_exits_2(tmp_path, capsys):
    source = write_notebook(tmp_path / "typed.ipynb", "print(n)", parameters="n: int = 20")
    assert cli.main(["reproduce", str(source), "-p", "n", "many"]) == 2
    assert "expects int" in capsys.readouterr().err


def test_missing_notebook_exits_2(tmp_path, capsys):
    assert cli.main(["reproduce", str(tmp_path / "nowhere.ipynb")]) == 2
    error = capsys.readouterr().err
    assert "nowhere.ipynb" in error and "does not exist" in error


def test_parameter_without_value_is_a_usage_error(tmp_path, capsys):
    source = write_notebook(tmp_path / "demo.ipynb", "print(greeting)")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reproduce", str(source), "-p", "repeat"])
    assert exit_info.value.code == 2
    assert "expected 2 arguments" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("-2", -2), ("0.25", 0.25), ("1e-4", 1e-4), ("true", True), ("False", False), ("none", None),
    ("squad", "squad"), ("'42'", "42"), ('"true"', "true"), ("a b", "a b"),
])
def test_parameter_values_parse_as_literals(text, value):
    parsed = cli.parse_parameter_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_model_info_before_and_after_a_build(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    assert cli.main(["model", "info"]) == 1
    assert "not built yet" in capsys.readouterr().err

    from bert_insight.models import default

    directory = default.default_model_dir()
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    card = {"exact_match": 51.2, "f1": 63.4, "eval_articles": ["Force", "Islamism"],
            "training_log": [{"step": 1, "loss": 5.0}, {"step": 2, "loss": 1.25}]}
    (directory / "model_card.json").write_text(json.dumps(card))
    assert cli.main(["model", "info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["exact_match", "51.2"] for line in lines)
    assert any(line.split()[0] == "eval_articles" and "Force, Islamism" in line for line in lines)
    assert any("2 steps" in line and "5.000" in line and "1.250" in line for line in lines)


def test_model_build_prints_the_card(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    from bert_insight.models import default

    budgets = []

    def build(directory, *, progress, train_seconds):
        budgets.append(train_seconds)
        (directory / "config.json").write_text("{}")
        (directory / "model_card.json").write_text(json.dumps({"f1": 70.5}))

    monkeypatch.setattr(default, "_build_into", build)
    assert cli.main(["model", "build"]) == 0
    out = capsys.readouterr().out
    assert str(default.default_model_dir()) in out and "70.5" in out
    assert cli.main(["model", "build", "--rebuild", "--train-minutes", "2.5"]) == 0
    assert budgets == [default.TRAINING_SECONDS, 150.0]
    assert cli.main(["model", "build", "--rebuild", "--train-minutes", "0"]) == 2
