"""The ``bert-insight`` command: build, inspect, export or import the offline default model; reproduce a notebook.

    bert-insight model build [--rebuild] [--train-minutes N]   build the offline default model (once per machine)
    bert-insight model info [--full]            its card: the summary and the card file's path (--full: every field)
    bert-insight model export PATH              copy it to a new directory or a .tar.gz/.tgz/.tar/.zip archive
    bert-insight model import PATH [--replace]  install an exported copy as this machine's default model
    bert-insight reproduce NOTEBOOK [-p NAME VALUE ...] [--output-dir runs]

``model build`` follows the standard recipe: a fixed number of optimiser steps
(``bert_insight.models.default.STANDARD_STEPS``), so every machine builds a model of the same quality.
``--train-minutes N`` opts into a time budget instead: on a slow machine it stops earlier and gives a
machine-dependent, weaker model. ``model export`` on a machine that built it and ``model import`` on the
others skips the build.

``reproduce`` runs the notebook through papermill on a kernel of the interpreter running this command
(so it works in a fresh virtual environment whatever kernels Jupyter knows), then writes
``<output-dir>/<stem>/<stem>.ipynb`` and an HTML copy next to it. Every ``-p`` value is checked before
any kernel starts, against the type annotated in the notebook's ``parameters`` cell
(``n_examples: int = 20``; bool, int, float, str and their optional forms ``Optional[int]``,
``int | None``) or, for a parameter without an annotation, the type of its default literal. A str
parameter takes the text as given (``-p label 20`` is the string "20"; no quotes needed).

Bad input (a wrong parameter, a missing or damaged model, an export target that exists) is one line
``bert-insight: error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .errors import BertInsightInputError

#: Exit code for bad command-line input (argparse's own convention).
USAGE_ERROR = 2
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KERNEL_NAME = "bert-insight-python"


class UsageError(Exception):
    """A command-line mistake; its message is printed as one line and the exit code is 2."""


# ---- parameters -------------------------------------------------------------------------------------
def parse_parameter_value(text: str) -> bool | int | float | str | list | None:
    """A command-line value as a Python literal: int, float, bool (true/false), None (none/null), a list
    written as a Python list literal (``'["squad", "babi"]'``), or str.

    Quotes force a string (``'"42"'`` -> ``"42"``); anything else that is not a number or a keyword
    stays the text itself.
    """
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return text
        return value if isinstance(value, list) else text
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        return stripped[1:-1]
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", "~"):
        return None
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    return text


_SCALAR_TYPES = ("bool", "int", "float", "str", "list")


@dataclass(frozen=True)
class ParameterType:
    """What a notebook parameter accepts: some of bool/int/float/str, and None when ``optional``.

    ``origin`` says where the type came from: "declared" (the parameters cell's annotation) or
    "default" (the type of the default literal, for a parameter without an annotation).
    """

    kinds: tuple[str, ...]
    optional: bool = False
    origin: str = "declared"

    def describe(self) -> str:
        return " or ".join(self.kinds + (("None",) if self.optional else ()))


def parse_annotation(annotation: str | None) -> ParameterType | None:
    """The :class:`ParameterType` of a parameter annotation, or None when it is not one this command checks.

    Understands ``int``, ``float``, ``bool``, ``str``, ``Optional[X]``, ``Union[X, None]``, ``X | None``
    (and ``typing.``-prefixed or quoted forms). papermill reports "None" for an unannotated parameter;
    that, and any other type (``list[int]``, ``Path``), gives None.
    """
    if annotation is None or annotation.strip() in ("", "None", "NoneType"):
        return None
    try:
        members = _union_members(ast.parse(annotation.strip(), mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        return None
    if members is None:
        return None
    kinds = tuple(dict.fromkeys(member for member in members if member != "None"))
    if not kinds or any(kind not in _SCALAR_TYPES for kind in kinds):
        return None
    return ParameterType(kinds, optional="None" in members)


def _type_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.Optional, t.Union
        return node.attr
    return None


def _union_members(node: ast.expr) -> list[str] | None:
    """The type names a (possibly nested) union annotation lists, "None" for None; None if not a union of names."""
    if isinstance(node, ast.Constant):
        if node.value is None:
            return ["None"]
        if isinstance(node.value, str):  # a quoted annotation: "int | None"
            try:
                return _union_members(ast.parse(node.value.strip(), mode="eval").body)
            except SyntaxError:
                return None
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _union_members(node.left), _union_members(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Subscript):
        head = _type_name(node.value)
        arguments = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        parts = [_union_members(argument) for argument in arguments]
        if any(part is None for part in parts):
            return None
        flat = [member for part in parts for member in part]
        if head == "Optional" and len(arguments) == 1:
            return flat + ["None"]
        if head == "Union":
            return flat
        return None
    name = _type_name(node)
    if name is None:
        return None
    return ["None" if name == "NoneType" else name]


def parameter_type(info: dict) -> ParameterType | None:
    """The type a ``-p`` value must have: the declared annotation, else the default literal's type, else None."""
    declared = parse_annotation(info.get("inferred_type_name"))
    if declared is not None:
        return declared
    try:
        default = ast.literal_eval((info.get("default") or "").strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    kind = type(default).__name__
    return ParameterType((kind,), origin="default") if kind in _SCALAR_TYPES else None


def _fits(value, kind: str) -> bool:
    if kind == "list":
        return isinstance(value, list)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def typed_value(text: str, expected: ParameterType | None):
    """``text`` parsed by :func:`parse_parameter_value` and checked against ``expected``.

    Raises ValueError when it does not fit. An int given for a float is converted (``1`` -> ``1.0``);
    for a str type anything that is not an accepted bool/int/float/None stays the original text
    (``"20"``, ``"true"``). With ``expected`` None the parsed value passes through unchecked.
    """
    value = parse_parameter_value(text)
    if expected is None:
        return value
    if value is None and expected.optional:
        return None
    if value is not None:
        exact = type(value).__name__
        if exact in expected.kinds:
            return value
        for kind in expected.kinds:
            if kind != "str" and _fits(value, kind):
                return float(value) if kind == "float" else value
    if "str" in expected.kinds:
        return value if isinstance(value, str) else text
    raise ValueError(f"{text!r} is not {expected.describe()}")


def _parse_parameters(pairs: Sequence[Sequence[str]], declared: dict[str, dict]) -> dict:
    parameters = {}
    for key, text in pairs:
        if not _IDENTIFIER.match(key):
            raise UsageError(f"parameter name {key!r} is not a Python identifier; use -p NAME VALUE, e.g. -p n_examples 20")
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none: the notebook has no cell tagged 'parameters'"
            raise UsageError(f"unknown parameter {key!r}; the notebook's parameters are: {known}")
        info = declared[key]
        expected = parameter_type(info)
        try:
            parameters[key] = typed_value(text, expected)
        except ValueError:
            if expected.origin == "declared":
                where = f"declared `{key}: {info.get('inferred_type_name')}` in the parameters cell"
            else:
                where = (f"the type of its default {info.get('default')}; annotate it in the parameters cell "
                         "to accept another type")
            raise UsageError(f"parameter {key!r} expects {expected.describe()} ({where}), got {text!r}") from None
    return parameters


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """The parameters of a notebook's ``parameters`` cell: papermill's ``inspect_notebook``, completed.

    papermill reads annotations with a regular expression that does not accept ``|``, so it drops
    ``model: str | None = None`` altogether, and it cuts a default at a ``#`` inside a string. When the
    cell is plain Python its assignments are read with :mod:`ast` as well: a parameter papermill missed
    is added, a missing annotation filled in, and the default taken from the source.
    """
    import nbformat
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    cell = next((cell for cell in nbformat.read(str(notebook), as_version=4).cells
                 if "parameters" in cell.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return declared
    for name, annotation, default in _assignments(cell.source):
        entry = declared.setdefault(name, {"name": name, "inferred_type_name": "None", "default": default,
                                           "help": ""})
        if annotation and entry.get("inferred_type_name") in (None, "None"):
            entry["inferred_type_name"] = annotation
        entry["default"] = default
    return declared


def _assignments(source: str) -> list[tuple[str, str | None, str]]:
    """(name, annotation source or None, default source) of each top-level ``name[: type] = value``."""
    try:
        tree = ast.parse(source, type_comments=True)
    except (SyntaxError, ValueError):  # IPython magics and the like: papermill's reading stands alone
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found.append((node.target.id, ast.get_source_segment(source, node.annotation),
                          ast.get_source_segment(source, node.value)))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found.append((node.targets[0].id, node.type_comment, ast.get_source_segment(source, node.value)))
    return found


# ---- kernel ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _current_interpreter_kernel() -> Iterator[str]:
    """A Jupyter kernelspec that runs ``sys.executable``, visible only while the context is open.

    A user-wide ``python3`` kernelspec may point at another Python without bert_insight; putting
    our own spec first on JUPYTER_PATH makes the notebook run where this command runs.
    """
    with tempfile.TemporaryDirectory(prefix="bert-insight-kernel-") as root:
        spec_dir = Path(root) / "kernels" / _KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})",
            "language": "python",
            "metadata": {"debugger": True},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join([root] + ([previous] if previous else []))
        try:
            yield _KERNEL_NAME
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


# ---- reproduce ---------------------------------------------------------------------------------------
def reproduce(notebook: str | os.PathLike, parameters: Sequence[Sequence[str]] = (), *,
              output_dir: str | os.PathLike = "runs", progress: bool = True) -> tuple[Path, Path]:
    """Execute ``notebook`` with papermill and write the executed notebook and an HTML copy.

    ``parameters`` are (name, text) pairs, checked against the notebook's ``parameters`` cell
    (:func:`notebook_parameters`: names, and types by :func:`parameter_type`) and converted by
    :func:`typed_value` before any kernel starts. Returns (executed .ipynb path, .html path). Raises
    :class:`UsageError` for a missing notebook or bad parameters, and papermill's
    ``PapermillExecutionError`` when a cell fails (the partial notebook is written first).
    """
    import nbformat
    import papermill

    source = Path(notebook)
    if not source.is_file():
        raise UsageError(f"notebook {str(source)!r} does not exist")
    if source.suffix != ".ipynb":
        raise UsageError(f"{str(source)!r} is not a Jupyter notebook (.ipynb)")
    try:
        declared = notebook_parameters(source)
    except Exception as error:  # nbformat raises several types for a broken file
        raise UsageError(f"cannot read {str(source)!r} as a notebook: {error.__class__.__name__}: {error}") from error
    values = _parse_parameters(parameters, declared)

    run_dir = Path(output_dir) / source.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    executed = run_dir / f"{source.stem}.ipynb"
    html = run_dir / f"{source.stem}.html"
    original_kernelspec = nbformat.read(source, as_version=4).metadata.get("kernelspec")
    try:
        with _current_interpreter_kernel() as kernel_name:
            papermill.execute_notebook(
                str(source), str(executed), parameters=values, kernel_name=kernel_name,
                cwd=str(source.resolve().parent), progress_bar=progress,
            )
    finally:
        if executed.is_file():
            _restore_kernelspec(executed, original_kernelspec)
            _write_html(executed, html)
    return executed, html


def _restore_kernelspec(path: Path, kernelspec: dict | None) -> None:
    # The temporary kernel name would mean nothing to whoever opens the notebook later.
    import nbformat

    executed = nbformat.read(path, as_version=4)
    executed.metadata["kernelspec"] = kernelspec or {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}
    nbformat.write(executed, path)


def _write_html(notebook_path: Path, html_path: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path.write_text(body, encoding="utf-8")


# ---- model -------------------------------------------------------------------------------------------
def format_card(card: dict) -> list[str]:
    """The model card as readable ``key: value`` lines (lists joined, the training log summarised)."""
    lines = []
    width = max(len(key) for key in card) if card else 0
    for key, value in card.items():
        if key == "training_log":
            if value:
                value = (f"{len(value)} steps, loss {value[0]['loss']:.3f} (first step) -> "
                         f"{value[-1]['loss']:.3f} (last step)")
            else:
                value = "empty"
        elif isinstance(value, (list, tuple)):
            value = f"{len(value)}: " + ", ".join(map(str, value))
        lines.append(f"{key.ljust(width)}  {value}")
    return lines


def _print_card(directory: Path, card: dict, *, full: bool, what: str = "default model") -> None:
    """``default model: DIR``, the card summary (or every field when ``full``), and the card file's path."""
    from .models.default import card_summary
    from .models.store import CARD_FILE

    print(f"{what}: {directory}")
    shown = card if full else card_summary(card)
    if shown:
        print("\n".join(format_card(shown)))
    else:
        print("(the card has none of the summary fields)" if card else "(the model has no card)")
    card_path = directory / CARD_FILE
    if full:
        print(f"card file: {card_path}")
    else:
        print(f"full card: {card_path} (every field: bert-insight model info --full)")


def _model_build(rebuild: bool, train_minutes: float | None) -> int:
    from .models.default import ensure_default_model
    from .models.store import read_card

    if train_minutes is not None and not (math.isfinite(train_minutes) and train_minutes > 0):
        raise UsageError(f"--train-minutes {train_minutes:g}: pass a positive number of minutes, or leave it "
                         "out for the standard recipe")
    directory = ensure_default_model(progress=True, rebuild=rebuild,
                                     train_seconds=None if train_minutes is None else 60.0 * train_minutes)
    _print_card(directory, read_card(directory), full=False)
    return 0


def _squad2_build(rebuild: bool) -> int:
    from .models.default_squad2 import ensure_squad2_model
    from .models.store import read_card

    directory = ensure_squad2_model(rebuild=rebuild, progress=True)
    _print_card(directory, read_card(directory), full=False, what="SQuAD 2.0 default model")
    return 0


def _babi_build(rebuild: bool) -> int:
    from .models.default_babi import ensure_babi_model
    from .models.store import read_card

    directory = ensure_babi_model(rebuild=rebuild, progress=True)
    _print_card(directory, read_card(directory), full=False, what="bAbI model")
    return 0


def _classifier_tasks(task: str | None, all_tasks: bool) -> list[str]:
    from .models.default_classifiers import DEFAULT_TASKS, check_default_task

    if task is not None and all_tasks:
        raise UsageError("pass --task TASK or --all, not both")
    return list(DEFAULT_TASKS) if all_tasks else [check_default_task(task)] if task is not None else []


def _build_classifiers(tasks: list[str], *, rebuild: bool, glue_dir: str | None, precision: str) -> int:
    from .models.default_classifiers import ensure_default_classifier
    from .models.store import read_card

    for task in tasks:
        directory = ensure_default_classifier(task, glue_dir=glue_dir, precision=precision, rebuild=rebuild)
        _print_card(directory, read_card(directory), full=False, what=f"default {task} classifier")
    return 0


def _model_info(full: bool, task: str | None = None) -> int:
    from .models.store import default_model_dir, is_installed, read_card

    if task is not None:
        from .models.default_classifiers import check_default_task, default_classifier_dir

        task = check_default_task(task)
        directory = default_classifier_dir(task)
        if not is_installed(directory, what=f"The default {task} classifier"):
            print(f"The default {task} classifier is not built yet (expected in {directory}). Run "
                  f"`bert-insight model build --task {task} --glue-dir PATH` (PATH: a GLUE data folder; QNLI "
                  "needs none).", file=sys.stderr)
            return 1
        _print_card(directory, read_card(directory), full=full, what=f"default {task} classifier")
        return 0

    directory = default_model_dir()
    if not is_installed(directory):  # a damaged model raises, naming the missing files and what to do
        print(f"The offline default model is not built yet (expected in {directory}). Run "
              "`bert-insight model build` (about 27 minutes on 2 idle AMD Zen 3 cores), or "
              "`bert-insight model import PATH` with a copy exported on another machine.", file=sys.stderr)
        return 1
    _print_card(directory, read_card(directory), full=full)
    return 0


def _model_export(destination: str) -> int:
    from .models.store import default_model_dir, export_default_model

    written = export_default_model(destination)
    print(f"exported the default model {default_model_dir()} to {written}")
    print(f"install it on another machine with: bert-insight model import {written}")
    return 0


def _model_import(source: str, replace: bool) -> int:
    from .models.store import import_default_model, read_card

    directory = import_default_model(source, replace=replace)
    print(f"imported {Path(source).expanduser()} as the default model")
    _print_card(directory, read_card(directory), full=False)
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from papermill.exceptions import PapermillExecutionError

    try:
        executed, html = reproduce(args.notebook, args.parameter or [], output_dir=args.output_dir,
                                   progress=not args.quiet)
    except PapermillExecutionError as error:
        run_dir = Path(args.output_dir) / Path(args.notebook).stem
        stem = Path(args.notebook).stem
        print(f"error: the notebook failed in cell {error.exec_count} ({error.ename}: {error.evalue}); "
              f"partial executed notebook: {run_dir / f'{stem}.ipynb'} (HTML: {run_dir / f'{stem}.html'})",
              file=sys.stderr)
        return 1
    print(f"executed notebook: {executed}")
    print(f"HTML copy:         {html}")
    return 0


class _StandardStepsHelpFormatter(argparse.HelpFormatter):
    """Fills ``{standard_steps}`` in help texts only when help is shown: the constant's module imports torch."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text and "{standard_steps}" in text:
            from .models.default import STANDARD_STEPS

            text = text.replace("{standard_steps}", str(STANDARD_STEPS))
        return text


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``bert-insight``."""
    parser = argparse.ArgumentParser(prog="bert-insight", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    model = commands.add_parser("model", help="build, inspect, export or import the offline default model")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    build = model_commands.add_parser("build", help="build the offline default model (once per machine)",
                                      formatter_class=_StandardStepsHelpFormatter)
    build.add_argument("--rebuild", action="store_true", help="build again even if it exists")
    build.add_argument("--task", default=None, metavar="TASK",
                       help="build the default sentence classifier for a GLUE task instead (mrpc, stsb, sst2, rte, "
                            "qnli); see docs/classifiers.md")
    build.add_argument("--all", action="store_true", dest="all_tasks",
                       help="build all five default GLUE classifiers (not the QA model)")
    build.add_argument("--squad2", action="store_true",
                       help="build the SQuAD 2.0 default (load_qa_model('squad2'); the SQuAD 1.1 default first if "
                            "absent); see docs/default_model.md")
    build.add_argument("--babi", action="store_true",
                       help="build the bAbI model (load_qa_model('babi'): all 20 tasks, span prediction with the "
                            "candidate answers appended); see docs/vanaken2019.md")
    build.add_argument("--glue-dir", default=None, metavar="PATH",
                       help="GLUE data folder for the classifiers (holding MRPC/, STS-B/, ...); default: the bundled "
                            "QNLI data, or the `datasets` hub copy when online")
    build.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                       help="classifiers only: 'auto' trains in bf16 where the CPU/GPU multiplies bf16 natively "
                            "(the card records it), fp32 gives the same arithmetic everywhere")
    build.add_argument("--train-minutes", type=float, default=None, metavar="N",
                       help="opt in to a time budget of N minutes for the training loop (default: the standard "
                            "recipe of {standard_steps} optimiser steps, the same model on every machine); a "
                            "budget gives a machine-dependent model, weaker on a slow machine")
    info = model_commands.add_parser("info", help="print the default model's card summary and the card file's path")
    info.add_argument("--task", default=None, metavar="TASK", help="a default GLUE classifier's card instead")
    info.add_argument("--full", action="store_true",
                      help="every field of the card (the training log summarised in one line)")
    export = model_commands.add_parser("export", help="copy the default model to a directory or archive")
    export.add_argument("path", help="a new directory, or an archive: .tar.gz, .tgz, .tar or .zip")
    imported = model_commands.add_parser("import", help="install a copy written by `model export` as the default model")
    imported.add_argument("path", help="the directory or archive `bert-insight model export` wrote")
    imported.add_argument("--replace", action="store_true", help="replace a default model that is already installed")

    run = commands.add_parser("reproduce", help="execute a notebook with papermill, save .ipynb and .html")
    run.add_argument("notebook", help="path to the .ipynb file")
    run.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                     help="set a parameter of the notebook's 'parameters' cell (repeatable)")
    run.add_argument("--output-dir", default="runs", help="where runs/<stem>/ goes (default: runs)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bert-insight`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "model":
            if args.model_command == "build":
                tasks = _classifier_tasks(args.task, args.all_tasks)
                if args.babi:
                    if tasks or args.squad2 or args.train_minutes is not None:
                        raise UsageError("--babi builds the bAbI model alone (its fixed recipe); leave out "
                                         "--task / --all / --squad2 / --train-minutes")
                    return _babi_build(args.rebuild)
                if args.squad2:
                    if tasks or args.train_minutes is not None:
                        raise UsageError("--squad2 builds the SQuAD 2.0 default alone (its fixed recipe); leave out "
                                         "--task / --all / --train-minutes")
                    return _squad2_build(args.rebuild)
                if tasks:
                    if args.train_minutes is not None:
                        raise UsageError("--train-minutes is for the QA model; the classifiers' recipe is 3 epochs")
                    return _build_classifiers(tasks, rebuild=args.rebuild, glue_dir=args.glue_dir,
                                              precision=args.precision)
                return _model_build(args.rebuild, args.train_minutes)
            if args.model_command == "export":
                return _model_export(args.path)
            if args.model_command == "import":
                return _model_import(args.path, args.replace)
            return _model_info(args.full, args.task)
        return _reproduce(args)
    except (UsageError, BertInsightInputError) as error:
        message = " ".join(str(error).splitlines())  # one line, whatever the message
        print(f"bert-insight: error: {message}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
