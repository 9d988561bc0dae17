"""bert_insight: look inside BERT-style transformers, question answering first.

The whole public surface is the table below: each verb takes a model handle and data and returns a
tidy pandas DataFrame (columns named in its docstring). Names import lazily, so
``import bert_insight`` stays fast and torch loads only when a verb is first used.

    from bert_insight import load_qa_model, load_squad, predict, layer_ig
    handle = load_qa_model()                     # offline default: MiniLM-L6 fine-tuned on SQuAD 1.1
    examples = load_squad(split="heldout").head(20)
    attributions, convergence = layer_ig(handle, examples)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # models
    "load_qa_model": "bert_insight.models.loading",
    "load_base_model": "bert_insight.models.loading",
    "from_model": "bert_insight.models.handle",
    "QAModelHandle": "bert_insight.models.handle",
    "finetune_qa": "bert_insight.models.finetune",
    "load_classifier": "bert_insight.models.loading",
    "finetune_classifier": "bert_insight.models.finetune",
    "ClassifierHandle": "bert_insight.models.handle",
    "ModelHandle": "bert_insight.models.handle",
    "save_checkpoint": "bert_insight.models.checkpoint",
    "default_model_dir": "bert_insight.models.store",
    "export_default_model": "bert_insight.models.store",
    "import_default_model": "bert_insight.models.store",
    # data
    "load_squad": "bert_insight.data",
    "load_duorc": "bert_insight.data",
    "load_hotpotqa": "bert_insight.data",
    "load_babi": "bert_insight.data",
    "validate_examples": "bert_insight.data",
    "nearest_questions": "bert_insight.data",
    "HELDOUT_TITLES": "bert_insight.data",
    "load_glue": "bert_insight.data",
    "validate_sentence_examples": "bert_insight.data",
    "split_examples": "bert_insight.data",
    "context_sentences": "bert_insight.data",
    "supporting_facts_task": "bert_insight.data",
    "question_type_task": "bert_insight.data",
    "load_glue_heldout": "bert_insight.models.default_classifiers",
    "base_classifier": "bert_insight.models.default_classifiers",
    # QA predictions and tokens
    "predict": "bert_insight.qa",
    "evaluate": "bert_insight.qa",
    "tune_null_threshold": "bert_insight.qa",
    "analysis_windows": "bert_insight.qa",
    "tokens": "bert_insight.tokens_frame",
    # sentence classification (GLUE)
    "classify": "bert_insight.classification",
    "evaluate_classifier": "bert_insight.classification",
    "kovaleva2019_table1": "bert_insight.kovaleva2019",
    # attribution (Ramnath et al. 2020)
    "layer_ig": "bert_insight.attribution.layer_ig",
    # attribution (the DeepLIFT study of BERT on SQuAD 2.0)
    "layer_deeplift": "bert_insight.attribution.layer_deeplift",
    "cluster_profiles": "bert_insight.attribution.profiles",
    "layer_focus": "bert_insight.attribution.profiles",
    "deeplift2019_comparison": "bert_insight.attribution.deeplift2019",
    "importance_jsd": "bert_insight.attribution.analysis",
    "topk_categories": "bert_insight.attribution.analysis",
    "topk_pos": "bert_insight.attribution.analysis",
    "quantifier_analysis": "bert_insight.attribution.analysis",
    "word_importance": "bert_insight.attribution.analysis",
    "top_words": "bert_insight.attribution.analysis",
    "ramnath2020_comparison": "bert_insight.attribution.ramnath2020",
    "ramnath2020_by_depth": "bert_insight.attribution.ramnath2020",
    "pos_tag_words": "bert_insight.pos",
    "tag_passages": "bert_insight.pos",
    # attention (Kovaleva et al. 2019)
    "attention_maps": "bert_insight.attention.maps",
    "AttentionMaps": "bert_insight.attention.maps",
    "special_token_attention": "bert_insight.attention.stats",
    "attention_similarity": "bert_insight.attention.stats",
    "feature_attention": "bert_insight.attention.linguistic",
    "token_to_token_attention": "bert_insight.attention.linguistic",
    "relation_heads": "bert_insight.attention.linguistic",
    "attention_classes": "bert_insight.attention.patterns", "class_proportions": "bert_insight.attention.patterns",
    "AttentionPatternClassifier": "bert_insight.attention.patterns",
    "ablate_heads": "bert_insight.attention.ablation",
    "disabled_heads": "bert_insight.attention.ablation",
    "paired_bootstrap": "bert_insight.resampling",
    "propbank_links": "bert_insight.data.conllu",
    "dependency_links": "bert_insight.data.conllu",
    "load_conllu": "bert_insight.data.conllu",
    # edge probing (Tenney et al. 2019)
    "edge_probe": "bert_insight.probing.edge",
    "EdgeProbeResult": "bert_insight.probing.edge",
    "probe_traces": "bert_insight.probing.edge",
    "EdgeProbe": "bert_insight.probing.estimator",
    "encode_targets": "bert_insight.probing.encode",
    "EdgeTask": "bert_insight.data.edge_tasks",
    "load_edge_task": "bert_insight.data.edge_tasks",
    "read_jiant_json": "bert_insight.data.edge_tasks",
    # representations (Ramnath Figures 2-3; van Aken et al. 2019)
    "hidden_states": "bert_insight.representations",
    "TokenVectors": "bert_insight.representations",
    "project_tokens": "bert_insight.representations",
    "kmeans_tokens": "bert_insight.representations",
    # phases (van Aken et al. 2019)
    "phase_roles": "bert_insight.phases",
    "token_projection": "bert_insight.phases",
    "token_clusters": "bert_insight.phases",
    "phase_scores": "bert_insight.phases",
    "phase_curves": "bert_insight.phases",
    "failure_separation": "bert_insight.phases",
    # van Aken et al. 2019: the probing suite and the paper's numbers
    "probing_suite": "bert_insight.vanaken2019",
    "ability_heatmap": "bert_insight.vanaken2019",
    "probing_summary": "bert_insight.vanaken2019",
    "table2_comparison": "bert_insight.vanaken2019",
    "phase_comparison": "bert_insight.vanaken2019",
    # errors
    "BertInsightInputError": "bert_insight.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'bert_insight' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
