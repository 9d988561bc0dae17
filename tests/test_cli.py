"""The `bert-insight` command line: reproduce (papermill + nbconvert), model info/build/export/import."""

from __future__ import annotations

import ast
import json
import tarfile
from pathlib import Path

import nbformat
import pytest

from bert_insight import cli

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


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
    ('["squad", "babi"]', ["squad", "babi"]), ("[1, 2.5]", [1, 2.5]), ("[not a literal]", "[not a literal]"),
])
def test_parameter_values_parse_as_literals(text, value):
    parsed = cli.parse_parameter_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_a_list_parameter_takes_a_list_literal_and_refuses_a_bare_word():
    expected = cli.parameter_type({"inferred_type_name": "list", "default": '["squad"]'})
    assert cli.typed_value('["squad", "babi"]', expected) == ["squad", "babi"]
    with pytest.raises(ValueError, match="is not list"):
        cli.typed_value("squad", expected)


# ---- typed parameters ----------------------------------------------------------------------------------
TYPED_PARAMETERS = """# Parameters
from typing import Optional

model: str | None = None   # papermill's inspect_notebook drops this line (no `|` in its pattern)
n_examples: int = 20       # questions
rate: Optional[float] = None
label: str = "a # b"       # papermill cuts this default at the '#'
loud: bool = False
undeclared = 3
anything = None"""


@pytest.fixture
def fake_execute(monkeypatch):
    """papermill.execute_notebook replaced by a copy of the input: records the parameters, starts no kernel."""
    import papermill

    calls = []

    def execute(source, output, parameters, **kwargs):
        calls.append(parameters)
        nbformat.write(nbformat.read(source, as_version=4), output)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return calls


@pytest.mark.parametrize("arguments, message", [
    (["-p", "n_examples", "abc"], "parameter 'n_examples' expects int (declared `n_examples: int`"),
    (["-p", "n_examples", "2.5"], "expects int"),
    (["-p", "n_examples", "none"], "expects int"),      # not Optional: None is refused
    (["-p", "n_examples", "'20'"], "expects int"),      # quotes force a string
    (["-p", "rate", "fast"], "expects float or None"),
    (["-p", "loud", "yes"], "expects bool"),
    (["-p", "undeclared", "x"], "expects int (the type of its default 3"),
])
def test_typed_parameters_are_checked_before_any_kernel_starts(tmp_path, capsys, fake_execute, arguments, message):
    source = write_notebook(tmp_path / "typed.ipynb", "print(n_examples)", parameters=TYPED_PARAMETERS)
    runs = tmp_path / "runs"
    assert cli.main(["reproduce", str(source), "--output-dir", str(runs), "-q", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and arguments[2] in error
    assert error.startswith("bert-insight: error:") and len(error.strip().splitlines()) == 1
    assert fake_execute == [] and not (runs / "typed" / "typed.ipynb").exists() and not runs.exists()


@pytest.mark.parametrize("arguments, expected", [
    (["-p", "model", "x"], {"model": "x"}),              # `str | None`, although papermill does not see it
    (["-p", "model", "none"], {"model": None}),
    (["-p", "model", "20"], {"model": "20"}),            # str: the text as given, no quotes needed
    (["-p", "label", "20"], {"label": "20"}),
    (["-p", "label", "true"], {"label": "true"}),
    (["-p", "label", '"quoted"'], {"label": "quoted"}),
    (["-p", "n_examples", "7"], {"n_examples": 7}),
    (["-p", "rate", "1"], {"rate": 1.0}),                # an int for a float becomes a float
    (["-p", "rate", "none"], {"rate": None}),
    (["-p", "loud", "TRUE"], {"loud": True}),
    (["-p", "undeclared", "4"], {"undeclared": 4}),      # the default's type
    (["-p", "anything", "whatever"], {"anything": "whatever"}),  # no annotation, default None: passes through
    (["-p", "anything", "5"], {"anything": 5}),
])
def test_typed_parameters_are_converted_to_the_declared_type(tmp_path, capsys, fake_execute, arguments, expected):
    source = write_notebook(tmp_path / "typed.ipynb", "print(n_examples)", parameters=TYPED_PARAMETERS)
    runs = tmp_path / "runs"
    assert cli.main(["reproduce", str(source), "--output-dir", str(runs), "-q", *arguments]) == 0, capsys.readouterr().err
    assert len(fake_execute) == 1
    assert fake_execute[0] == expected
    assert [type(value) for value in fake_execute[0].values()] == [type(value) for value in expected.values()]
    assert (runs / "typed" / "typed.ipynb").is_file() and (runs / "typed" / "typed.html").is_file()


def test_parameters_papermill_misreads_are_completed_from_the_source(tmp_path):
    source = write_notebook(tmp_path / "typed.ipynb", "pass", parameters=TYPED_PARAMETERS)
    import papermill

    assert "model" not in papermill.inspect_notebook(str(source))  # the papermill limitation worked around
    declared = cli.notebook_parameters(source)
    assert list(declared) == ["n_examples", "rate", "label", "loud", "undeclared", "anything", "model"]
    assert declared["model"]["inferred_type_name"] == "str | None"
    assert declared["label"]["default"] == '"a # b"'
    assert cli.parameter_type(declared["model"]) == cli.ParameterType(("str",), optional=True)


@pytest.mark.parametrize("annotation, kinds, optional", [
    ("int", ("int",), False), ("float", ("float",), False), ("bool", ("bool",), False), ("str", ("str",), False),
    ("Optional[int]", ("int",), True), ("typing.Optional[str]", ("str",), True), ("int | None", ("int",), True),
    ("None | str", ("str",), True), ("Union[int, None]", ("int",), True), ("'float | None'", ("float",), True),
    ("int | float", ("int", "float"), False),
])
def test_annotations_that_are_checked(annotation, kinds, optional):
    assert cli.parse_annotation(annotation) == cli.ParameterType(kinds, optional=optional)


@pytest.mark.parametrize("annotation", ["None", "NoneType", "", "list[int]", "Path", "Literal['a']",
                                        "dict[str, int] | None", "int |"])
def test_annotations_that_are_not_checked(annotation):
    assert cli.parse_annotation(annotation) is None


@pytest.mark.notebook
def test_reproduce_sets_a_str_or_none_parameter_in_the_kernel(tmp_path, capsys):
    source = write_notebook(tmp_path / "typed.ipynb", "print(repr(model), repr(label), n_examples + 1)",
                            parameters=TYPED_PARAMETERS)
    runs = tmp_path / "runs"
    code = cli.main(["reproduce", str(source), "-p", "model", "x", "-p", "label", "20", "-p", "n_examples", "3",
                     "--output-dir", str(runs), "-q"])
    assert code == 0, capsys.readouterr().err
    assert "'x' '20' 4" in cell_text(runs / "typed" / "typed.ipynb")


@pytest.mark.parametrize("name", ["00_quickstart.ipynb", "01_ramnath2020_layer_ig.ipynb"])
def test_every_parameter_of_the_real_notebooks_has_a_declared_type(name):
    import papermill

    path = NOTEBOOKS / name
    declared = papermill.inspect_notebook(str(path))
    cell = next(cell for cell in nbformat.read(path, as_version=4).cells
                if "parameters" in cell.metadata.get("tags", []))
    # papermill sees every assignment of the cell (a `str | None` annotation would make it drop one)
    assert list(declared) == [name for name, _, _ in cli._assignments(cell.source)] and declared
    for parameter, info in declared.items():
        expected = cli.parse_annotation(info["inferred_type_name"])
        assert expected is not None, f"{name}: {parameter} has no type papermill reads: {info}"
        default = ast.literal_eval(info["default"])
        assert cli.typed_value(info["default"], expected) == default, f"{name}: {parameter}'s default is not its type"


# ---- model: info, build, export, import ------------------------------------------------------------------
CARD = {"name": "minilm-l6-squad11-v1", "recipe": "standard-400-steps-fp32", "exact_match": 51.2, "f1": 63.4,
        "steps": 400, "eval_articles": ["Force", "Islamism"],
        "training_log": [{"step": 1, "loss": 5.0}, {"step": 2, "loss": 1.25}]}


def fake_model(directory: Path, card: dict | None = None) -> Path:
    """A directory with every file store.REQUIRED_FILES asks for (tiny contents) and a model card."""
    from bert_insight.models import store

    directory.mkdir(parents=True, exist_ok=True)
    for group in store.REQUIRED_FILES:
        name = group[0]
        if name != store.CARD_FILE:
            (directory / name).write_bytes(f"{name} of {directory.name}".encode())
    (directory / store.CARD_FILE).write_text(json.dumps(CARD if card is None else card))
    return directory


def one_error_line(capsys) -> str:
    error = capsys.readouterr().err
    assert error.startswith("bert-insight: error: ") and len(error.strip().splitlines()) == 1, error
    return error


def test_model_info_before_and_after_a_build(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    assert cli.main(["model", "info"]) == 1
    assert "not built yet" in capsys.readouterr().err

    from bert_insight.models import default

    directory = fake_model(default.default_model_dir())
    assert cli.main(["model", "info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"default model: {directory}"
    assert any(line.split() == ["exact_match", "51.2"] for line in lines)
    assert any(line.split() == ["recipe", "standard-400-steps-fp32"] for line in lines)
    assert not any(line.split()[0] in ("eval_articles", "training_log", "name") for line in lines)  # summary only
    assert lines[-1].startswith(f"full card: {directory / 'model_card.json'}") and "--full" in lines[-1]

    assert cli.main(["model", "info", "--full"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["exact_match", "51.2"] for line in lines)
    assert any(line.split()[0] == "eval_articles" and "Force, Islamism" in line for line in lines)
    assert any("2 steps" in line and "5.000" in line and "1.250" in line for line in lines)
    assert any(line.split()[0] == "name" for line in lines)
    assert lines[-1] == f"card file: {directory / 'model_card.json'}"


def test_model_info_reports_a_damaged_model_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    from bert_insight.models import store

    directory = fake_model(store.default_model_dir())
    (directory / "model_card.json").write_text("{not json")
    assert cli.main(["model", "info"]) == 2
    assert "corrupt" in one_error_line(capsys)
    (directory / "model.safetensors").unlink()
    assert cli.main(["model", "info", "--full"]) == 2
    assert "model.safetensors or pytorch_model.bin" in one_error_line(capsys)


def test_model_build_prints_the_card(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    from bert_insight.models import default

    budgets = []

    def build(directory, *, progress, train_seconds):
        budgets.append(train_seconds)
        fake_model(directory, {"f1": 70.5, "eval_articles": ["Force"], "training_log": []})

    monkeypatch.setattr(default, "build_into", build)
    assert cli.main(["model", "build"]) == 0
    out = capsys.readouterr().out
    assert str(default.default_model_dir()) in out and "70.5" in out
    assert "eval_articles" not in out and "training_log" not in out
    assert f"full card: {default.default_model_dir() / 'model_card.json'}" in out
    assert cli.main(["model", "build", "--rebuild", "--train-minutes", "2.5"]) == 0
    assert budgets == [None, 150.0]  # the standard recipe has no time budget; --train-minutes opts in
    assert cli.main(["model", "build", "--rebuild", "--train-minutes", "0"]) == 2
    assert cli.main(["model", "build", "--rebuild", "--train-minutes", "inf"]) == 2
    assert budgets == [None, 150.0]


def test_model_build_refuses_a_damaged_directory_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    from bert_insight.models import default

    monkeypatch.setattr(default, "build_into", lambda *args, **kwargs: pytest.fail("must not build"))
    directory = default.default_model_dir()
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    assert cli.main(["model", "build"]) == 2
    error = one_error_line(capsys)
    assert "incomplete" in error and "--rebuild" in error


@pytest.mark.parametrize("target", ["copy", "copy.tar.gz"])
def test_export_then_import_into_another_cache(tmp_path, monkeypatch, capsys, target):
    from bert_insight.models import store

    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path / "laptop-a"))
    source = fake_model(store.default_model_dir())
    exported = tmp_path / target
    assert cli.main(["model", "export", str(exported)]) == 0
    out = capsys.readouterr().out
    assert f"to {exported}" in out and f"bert-insight model import {exported}" in out
    assert exported.is_dir() if target == "copy" else tarfile.is_tarfile(exported)

    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path / "laptop-b"))
    assert not store.is_built()
    assert cli.main(["model", "import", str(exported)]) == 0
    out = capsys.readouterr().out
    installed = store.default_model_dir()
    assert installed == tmp_path / "laptop-b" / "models" / store.MODEL_DIR_NAME
    assert f"default model: {installed}" in out and "51.2" in out and "training_log" not in out
    assert sorted(path.name for path in installed.iterdir()) == sorted(path.name for path in source.iterdir())
    assert all((installed / path.name).read_bytes() == path.read_bytes() for path in source.iterdir())
    assert cli.main(["model", "info"]) == 0
    assert any(line.split() == ["f1", "63.4"] for line in capsys.readouterr().out.splitlines())


def test_export_refuses_an_existing_destination_and_a_missing_model(tmp_path, monkeypatch, capsys):
    from bert_insight.models import store

    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path / "cache"))
    assert cli.main(["model", "export", str(tmp_path / "copy")]) == 2
    assert "Build it first" in one_error_line(capsys)
    fake_model(store.default_model_dir())
    (tmp_path / "taken.tar.gz").write_text("mine")
    assert cli.main(["model", "export", str(tmp_path / "taken.tar.gz")]) == 2
    assert "already exists" in one_error_line(capsys)
    assert (tmp_path / "taken.tar.gz").read_text() == "mine"


def test_import_replaces_an_installed_model_only_with_replace(tmp_path, monkeypatch, capsys):
    from bert_insight.models import store

    exported = fake_model(tmp_path / "exported", {**CARD, "f1": 99.0})
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path / "cache"))
    fake_model(store.default_model_dir(), {**CARD, "f1": 10.0})
    assert cli.main(["model", "import", str(exported)]) == 2
    assert "--replace" in one_error_line(capsys)
    assert store.read_default_card()["f1"] == 10.0  # untouched
    assert cli.main(["model", "import", str(exported), "--replace"]) == 0
    assert "99.0" in capsys.readouterr().out
    assert store.read_default_card()["f1"] == 99.0


@pytest.mark.parametrize("archive", ["garbage", "incomplete"])
def test_import_of_a_corrupt_archive_exits_2_in_one_line(tmp_path, monkeypatch, capsys, archive):
    from bert_insight.models import store

    path = tmp_path / "model.tar.gz"
    if archive == "garbage":
        path.write_bytes(b"\x1f\x8b this is not a gzip stream")
    else:
        partial = fake_model(tmp_path / store.MODEL_DIR_NAME)
        (partial / "model.safetensors").unlink()
        with tarfile.open(path, "w:gz") as tar:
            tar.add(partial, arcname=partial.name)
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path / "cache"))
    assert cli.main(["model", "import", str(path)]) == 2
    error = one_error_line(capsys)
    assert ("Cannot unpack" in error) if archive == "garbage" else ("lacks model.safetensors" in error)
    assert not store.is_built() and not store.default_model_dir().exists()
    assert [child.name for child in store.default_model_dir().parent.iterdir() if child.is_dir()] == []
