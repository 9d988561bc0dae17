"""The ``bert-insight`` command: build or inspect the offline default model, reproduce a notebook.

    bert-insight model build [--rebuild] [--train-minutes N]   fine-tune the offline default model
    bert-insight model info                  print its model card
    bert-insight reproduce NOTEBOOK [-p KEY VALUE ...] [--output-dir runs]

``reproduce`` runs the notebook through papermill on a kernel of the interpreter running this command
(so it works in a fresh virtual environment whatever kernels Jupyter knows), then writes
``<output-dir>/<stem>/<stem>.ipynb`` and an HTML copy next to it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

#: Exit code for bad command-line input (argparse's own convention).
USAGE_ERROR = 2
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KERNEL_NAME = "bert-insight-python"


class UsageError(Exception):
    """A command-line mistake; its message is printed as one line and the exit code is 2."""


# ---- parameters -------------------------------------------------------------------------------------
def parse_parameter_value(text: str) -> bool | int | float | str | None:
    """A command-line value as a Python literal: int, float, bool (true/false), None (none/null), or str.

    Quotes force a string (``'"42"'`` -> ``"42"``); anything else that is not a number or a keyword
    stays the text itself.
    """
    stripped = text.strip()
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


def _parse_parameters(pairs: Sequence[Sequence[str]], declared: dict[str, dict]) -> dict:
    parameters = {}
    for key, text in pairs:
        if not _IDENTIFIER.match(key):
            raise UsageError(f"parameter name {key!r} is not a Python identifier; use -p NAME VALUE, e.g. -p n_examples 20")
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none: the notebook has no cell tagged 'parameters'"
            raise UsageError(f"unknown parameter {key!r}; the notebook's parameters are: {known}")
        value = parse_parameter_value(text)
        expected = declared[key].get("inferred_type_name")
        if not _fits(value, expected):
            raise UsageError(
                f"parameter {key!r} expects {expected} (default {declared[key].get('default')}), got {text!r}"
            )
        parameters[key] = value
    return parameters


def _fits(value, expected: str | None) -> bool:
    if expected in (None, "None") or value is None:
        return True
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True  # str and everything papermill cannot infer: pass through


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

    ``parameters`` are (name, text) pairs, checked against the notebook's ``parameters`` cell and
    parsed by :func:`parse_parameter_value`. Returns (executed .ipynb path, .html path). Raises
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
        declared = papermill.inspect_notebook(str(source))
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


def _model_build(rebuild: bool, train_minutes: float | None) -> int:
    from .models.default import ensure_default_model

    if train_minutes is not None and not train_minutes > 0:
        raise UsageError(f"--train-minutes {train_minutes:g}: pass a positive number of minutes")
    directory = ensure_default_model(progress=True, rebuild=rebuild,
                                     train_seconds=None if train_minutes is None else 60.0 * train_minutes)
    card = json.loads((directory / "model_card.json").read_text())
    print(f"default model: {directory}")
    print("\n".join(format_card(card)))
    return 0


def _model_info() -> int:
    from .models.default import default_model_dir, read_default_card

    card = read_default_card()
    if card is None:
        print(f"The offline default model is not built yet (expected in {default_model_dir()}). "
              "Run `bert-insight model build` (about 15 minutes on 2 CPU cores).", file=sys.stderr)
        return 1
    print(f"default model: {default_model_dir()}")
    print("\n".join(format_card(card)))
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


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``bert-insight``."""
    parser = argparse.ArgumentParser(prog="bert-insight", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    model = commands.add_parser("model", help="build or inspect the offline default model")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    build = model_commands.add_parser("build", help="fine-tune the offline default model (once per machine)")
    build.add_argument("--rebuild", action="store_true", help="build again even if it exists")
    build.add_argument("--train-minutes", type=float, default=None,
                       help="time budget of the training loop (default 11); more gives a better model on a slow machine")
    model_commands.add_parser("info", help="print the default model's card")

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
                return _model_build(args.rebuild, args.train_minutes)
            return _model_info()
        return _reproduce(args)
    except UsageError as error:
        print(f"bert-insight: error: {error}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
