"""Run the notebooks through papermill with small parameters, as `bert-insight reproduce` does.

Runs use the offline default model, so they are marked slow (and notebook); the checks of the stored
notebooks themselves are fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

NOTEBOOK_PARAMETERS = {
    "00_quickstart.ipynb": ["model", "n_examples", "seed"],
    "01_ramnath2020_layer_ig.ipynb": ["model", "dataset", "n_examples", "n_steps", "quadrature", "precision", "jsd_top_k",
                                      "top_k", "seed", "projection", "cache_dir"],
    "02_deeplift_squad2.ipynb": ["model", "n_examples", "baseline", "k", "seed", "device", "cache_dir"],
    "03_vanaken2019.ipynb": ["models", "datasets", "n_examples", "probing_tasks", "n_train", "max_epochs", "method",
                             "seed", "device", "shared_data", "gpt2", "cache_dir"],
    "04_kovaleva2019_attention.ipynb": ["tasks", "include_qa", "n_examples", "qa_examples", "mode", "n_resamples",
                                        "gallery_examples", "seed", "device", "shared_data"],
    "05_tenney2019_edge_probing.ipynb": ["model", "tasks", "n_train", "n_eval", "modes", "max_epochs", "seed", "device",
                                         "shared_data", "cache_dir"],
}


def read(name: str):
    import nbformat

    return nbformat.read(NOTEBOOKS / name, as_version=4)


@pytest.mark.parametrize("name", sorted(NOTEBOOK_PARAMETERS))
def test_parameters_cell_is_what_papermill_reads(name):
    from papermill.translators import PythonTranslator

    notebook = read(name)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    # papermill's own parser (used for `-p` overrides and --help-notebook) finds every parameter
    assert [parameter.name for parameter in PythonTranslator.inspect(tagged[0])] == NOTEBOOK_PARAMETERS[name]
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", sorted(NOTEBOOK_PARAMETERS))
def test_notebooks_are_stored_without_outputs_and_use_only_public_names(name):
    import ast

    import bert_insight
    from bert_insight import viz

    public = {"bi": set(bert_insight.__all__), "viz": set(viz.__all__)}
    used = set()
    for cell in read(name).cells:
        if cell.cell_type != "code":
            continue
        assert not cell.get("outputs") and cell.get("execution_count") is None
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in public:
                used.add((node.value.id, node.attr))
    unknown = sorted(f"{module}.{attr}" for module, attr in used if attr not in public[module])
    assert not unknown, f"{name} uses names outside the public API: {unknown}"
    assert ("viz", "show") in used


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory) -> str:
    """A "python3" kernel that runs this interpreter (the venv's).

    A fresh venv needs no `ipykernel install`: ipykernel's wheel ships share/jupyter/kernels/python3
    into the venv, and jupyter_client replaces its argv[0] "python" with sys.executable. A user-level
    python3 kernelspec pointing at another interpreter would shadow it, so in that case a spec for
    this interpreter is written to a temporary JUPYTER_PATH entry, which is searched first.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        executable = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        executable = None
    substituted = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if executable in substituted or (executable and Path(executable).resolve() == Path(sys.executable).resolve()):
        yield "python3"
        return
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name="python3", prefix=str(prefix))  # argv[0] = sys.executable
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(prefix / "share" / "jupyter"), previous]))
    try:
        yield "python3"
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = previous


def run_notebook(name: str, tmp_path: Path, kernel_name: str, parameters: dict):
    import nbformat
    import papermill

    output = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(output), parameters=parameters, kernel_name=kernel_name,
                               cwd=str(tmp_path), progress_bar=False)
    return nbformat.read(output, as_version=4)


def outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def texts(notebook, mime: str) -> list[str]:
    found = []
    for output in outputs(notebook):
        if output.get("output_type") == "stream" and mime == "text/plain":
            found.append(output.get("text", ""))
        elif mime in output.get("data", {}):
            found.append(output["data"][mime])
    return found


def assert_clean_and_offline(notebook, n_views: int) -> None:
    errors = [output for output in outputs(notebook) if output.get("output_type") == "error"]
    assert not errors, "\n".join(f"{e['ename']}: {e['evalue']}" for e in errors)
    everything = json.dumps(notebook)
    # BokehJS is embedded inline (no CDN) and each view left its div and its render script
    assert "cdn.bokeh.org" not in everything
    assert any("Bokeh" in script and len(script) > 500_000 for script in texts(notebook, "application/javascript"))
    roots = [root for html in texts(notebook, "text/html") for root in re.findall(r'<div id="[^"]+" data-root-id="([^"]+)"', html)]
    executed = [output["metadata"]["application/vnd.bokehjs_exec.v0+json"]["id"] for output in outputs(notebook)
                if "application/vnd.bokehjs_exec.v0+json" in output.get("metadata", {})]
    assert sorted(roots) == sorted(executed) and len(roots) >= n_views


@pytest.mark.slow
@pytest.mark.notebook
def test_quickstart_runs_and_reports_scores(tmp_path, kernel_name, default_handle):
    # default_handle: the default model is built (once per machine) before the kernel needs it
    notebook = run_notebook("00_quickstart.ipynb", tmp_path, kernel_name, {"n_examples": 5, "seed": 1})
    assert_clean_and_offline(notebook, n_views=1)
    printed = "".join(texts(notebook, "text/plain"))
    assert f"model: {default_handle.name}" in printed
    match = re.search(r"EM = ([\d.]+)\s+F1 = ([\d.]+)\s+on (\d+) questions", printed)
    assert match, printed
    exact_match, f1, n = float(match.group(1)), float(match.group(2)), int(match.group(3))
    assert n == 5 and 0 <= exact_match <= f1 <= 100
    assert "held-out articles" in printed

    # the static HTML export carries the view and BokehJS itself: it renders without a kernel or network
    import nbconvert

    html, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
    assert "embed_items_notebook" in html and "data-root-id" in html and "cdn.bokeh.org" not in html


@pytest.mark.slow
@pytest.mark.notebook
def test_ramnath_notebook_runs_with_small_parameters(tmp_path, kernel_name, default_handle):
    notebook = run_notebook("01_ramnath2020_layer_ig.ipynb", tmp_path, kernel_name,
                            {"n_examples": 3, "n_steps": 8, "seed": 1728, "projection": "pca"})
    # seed 1728 draws three short passages, one with a "how many" question, so every view is drawn:
    # JSD pair, category curves, POS curves, numeric focus, passage view, token scatter
    assert_clean_and_offline(notebook, n_views=6)
    frames = "".join(texts(notebook, "text/html"))
    assert "same_trend" in frames and "answer words among the top-k" in frames
    assert "bert_base" in frames and "numeric_share" in frames  # the by-depth table next to BERT-base


@pytest.mark.slow
@pytest.mark.notebook
def test_deeplift_notebook_runs_with_small_parameters(tmp_path, kernel_name):
    # The SQuAD 2.0 default builds on first use (after the SQuAD 1.1 default), once per machine.
    notebook = run_notebook("02_deeplift_squad2.ipynb", tmp_path, kernel_name, {"n_examples": 8, "k": 2})
    # token heatmap, output view, focus curves, cluster profiles
    assert_clean_and_offline(notebook, n_views=4)
    printed = "".join(texts(notebook, "text/plain"))
    assert "largest summation-to-delta gap" in printed and "stands in as" in printed
    frames = "".join(texts(notebook, "text/html"))
    assert "question_dip" in frames and "cramers_v" in frames and "has_answer" in frames


@pytest.mark.slow
@pytest.mark.notebook
def test_kovaleva_notebook_runs_with_small_parameters(tmp_path, kernel_name, default_handle):
    # QNLI's default classifier builds from bundled data (once per machine); no ../shared needed
    notebook = run_notebook("04_kovaleva2019_attention.ipynb", tmp_path, kernel_name,
                            {"tasks": ["qnli"], "n_examples": 6, "qa_examples": 3, "n_resamples": 100})
    # pattern gallery, heterogeneous grid, [CLS] grid, one single-head grid per model (qnli, qa), layer curves
    assert_clean_and_offline(notebook, n_views=6)
    printed = "".join(texts(notebook, "text/plain"))
    assert "qnli: " in printed and "qa: " in printed
    assert "this section is skipped" in printed  # shared_data=None: no PropBank links
    frames = "".join(texts(notebook, "text/html"))
    assert "ci_low" in frames and "to_cls" in frames  # the ablation summary and the Figure 6 table
    assert "heterogeneous" in frames and "vertical_diagonal" in frames  # the Figure 2 proportions


@pytest.mark.slow
@pytest.mark.notebook
def test_tenney_notebook_runs_on_the_bundled_slices(tmp_path, kernel_name):
    notebook = run_notebook("05_tenney2019_edge_probing.ipynb", tmp_path, kernel_name,
                            {"tasks": ["pos", "coref", "entities"], "n_train": 400, "n_eval": 300, "max_epochs": 4})
    # mixing weights, differential scores, the traces of hard POS targets
    assert_clean_and_offline(notebook, n_views=3)
    printed = "".join(texts(notebook, "text/plain"))
    assert "entities need UD English GUM" in printed  # shared_data=None: the non-bundled task is skipped
    assert "pos: EdgeProbeResult" in printed and "coref: EdgeProbeResult" in printed
    frames = "".join(texts(notebook, "text/html"))
    assert "center_of_gravity" in frames and "expected_layer" in frames


@pytest.mark.slow
@pytest.mark.notebook
def test_vanaken_notebook_runs_with_small_parameters(tmp_path, kernel_name, default_handle):
    # The bAbI model builds on first use (once per machine, about 40 minutes on 2 cores).
    notebook = run_notebook("03_vanaken2019.ipynb", tmp_path, kernel_name,
                            {"n_examples": 12, "n_train": 300, "max_epochs": 3,
                             "probing_tasks": ["coref", "supporting_facts"]})
    # per dataset: the phase view of its example and its phase curves; the sentence view; per dataset a
    # failure view when it has a right and a wrong prediction; the probing curves and the heatmap
    assert_clean_and_offline(notebook, n_views=9)
    printed = "".join(texts(notebook, "text/plain"))
    assert "What is a common punishment in the UK and Ireland?" in printed  # the paper's Table 1 examples
    assert "What is emily afraid of?" in printed
    assert "section 5.2 skipped" in printed
    frames = "".join(texts(notebook, "text/html"))
    assert "paper_bert" in frames and "answer_separation" in frames and "sup_babi" in frames
    assert "upper_half_gap" in frames
