"""One table per architecture family: where the embeddings, blocks, attention and QA head live.

No other module reaches into ``model.bert.encoder.layer[i]``; everything goes through an adapter so
a new family is one table row, and analyses work on BERT, RoBERTa, DistilBERT, ALBERT and ELECTRA
(:data:`ADAPTERS`, the encoder families every verb serves). GPT-2 (:data:`DECODER_ADAPTERS`) is a
causal decoder served for hidden states only: its adapter names the methods it cannot serve
(``unsupported``), and calling one raises one BertInsightInputError instead of a wrong answer.

Layer convention (DESIGN.md): hidden state ``l`` is the input of block ``l``; hidden state 0 is the
embedding output (after ELECTRA's / ALBERT's projection to the hidden size, as in Hugging Face's
``hidden_states`` tuple). GPT-2's last one, hidden state L, is the last block's output *after* the
final LayerNorm ``ln_f`` (Hugging Face applies it there; see docs/gpt2.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import torch
import transformers
from torch import nn

from ..errors import BertInsightInputError


_TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def module_at(root: nn.Module, dotted: str) -> nn.Module:
    """The submodule of ``root`` at the dotted attribute path (e.g. "encoder.layer")."""
    return reduce(getattr, dotted.split("."), root)


def _first_tensor(output) -> torch.Tensor:
    # transformers 4.x blocks return tuples, 5.x return the tensor itself.
    return output[0] if isinstance(output, (tuple, list)) else output


@dataclass(frozen=True)
class BlockLayout:
    """Where a post-LayerNorm encoder block keeps its parts (dotted paths relative to the block), for code
    that runs the block from its weights (the layer-IG fast path, bert_insight.attribution._ig_blocks)."""

    query: str
    key: str
    value: str
    attention_output: str
    attention_norm: str
    ffn_in: str
    activation: str
    ffn_out: str
    output_norm: str


@dataclass(frozen=True)
class ArchitectureAdapter:
    """Where one architecture family keeps its parts (attribute paths relative to the QA model)."""

    family: str
    model_types: tuple[str, ...]
    base_model_attr: str
    embeddings_path: str
    blocks_path: str
    #: Linear layer whose *input* is the concatenated per-head context vectors (head ablation hooks).
    attention_output_projection_path: str
    #: Linear layer producing the value vectors, relative to a block.
    value_projection_path: str
    #: Module whose forward returns the attention probabilities when loaded eagerly, relative to a block.
    self_attention_path: str
    embedding_projection_path: str | None = None
    qa_head_path: str = "qa_outputs"
    uses_token_type_ids: bool = True
    #: A causal decoder (GPT-2): one text sequence without special tokens, attention to earlier tokens only.
    causal: bool = False
    #: (method name, why this family cannot serve it) pairs; each such method raises BertInsightInputError.
    unsupported: tuple[tuple[str, str], ...] = ()
    #: The block's parts, for running it from its weights (None: only the family's own forward is run).
    block_layout: BlockLayout | None = None

    def _require(self, method: str) -> None:
        reason = dict(self.unsupported).get(method)
        if reason is not None:
            raise BertInsightInputError(
                f"The {self.family} adapter does not support {method}: {reason}. {self.family} handles serve "
                "bert_insight.hidden_states only; for this analysis use an encoder of one of the families "
                f"{', '.join(sorted(ADAPTERS))}."
            )

    # ---- parts -------------------------------------------------------------------------------
    def base_model(self, model: nn.Module) -> nn.Module:
        """The encoder / decoder stack: ``model.<base_model_attr>`` under a task head, else the model itself
        (a headless ``BertModel`` / ``GPT2Model``)."""
        base = getattr(model, self.base_model_attr, None)
        return base if isinstance(base, nn.Module) else model

    def num_layers(self, model: nn.Module) -> int:
        config = model.config
        return int(getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers"))

    def num_heads(self, model: nn.Module) -> int:
        config = model.config
        return int(getattr(config, "num_attention_heads", None) or getattr(config, "n_heads"))

    def blocks(self, model: nn.Module) -> list[nn.Module]:
        """The L blocks in order; ALBERT's shared group appears once per layer it serves."""
        base = self.base_model(model)
        if self.family == "albert":
            groups = base.encoder.albert_layer_groups
            n_layers = self.num_layers(model)
            n_groups = model.config.num_hidden_groups
            return [groups[int(i / (n_layers / n_groups))] for i in range(n_layers)]
        return list(module_at(base, self.blocks_path))

    def block_part(self, model: nn.Module, layer: int, dotted: str) -> nn.Module:
        block = self.blocks(model)[layer]
        if self.family == "albert":
            block = block.albert_layers[0]
        return module_at(block, dotted)

    def block_parts(self, model: nn.Module, layer: int) -> dict[str, nn.Module] | None:
        """Block ``layer``'s parts by :class:`BlockLayout` field name, or None when this family has no layout
        or this model's block is not the plain layout (ALBERT with several layers per group)."""
        if self.block_layout is None:
            return None
        if self.family == "albert" and len(self.blocks(model)[layer].albert_layers) != 1:
            return None
        return {name: self.block_part(model, layer, path) for name, path in vars(self.block_layout).items()}

    def attention_output_projection(self, model: nn.Module, layer: int) -> nn.Linear:
        self._require("attention_output_projection")
        return self.block_part(model, layer, self.attention_output_projection_path)

    def value_projection(self, model: nn.Module, layer: int) -> nn.Linear:
        self._require("value_projection")
        return self.block_part(model, layer, self.value_projection_path)

    def self_attention(self, model: nn.Module, layer: int) -> nn.Module:
        self._require("self_attention")
        return self.block_part(model, layer, self.self_attention_path)

    def qa_head(self, model: nn.Module) -> nn.Linear:
        self._require("qa_head")
        return module_at(model, self.qa_head_path)

    # ---- running pieces of the forward pass ---------------------------------------------------
    def embed(
        self,
        model: nn.Module,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state 0 (the input of block 0) for ``input_ids``."""
        self._require("embed")
        base = self.base_model(model)
        if self.family == "gpt2":
            # Token plus learned absolute position embeddings, then dropout (identity in eval), as
            # GPT2Model.forward does; positions start at 0 (no cache).
            positions = torch.arange(input_ids.shape[-1], device=input_ids.device)[None]
            return base.drop(base.wte(input_ids) + base.wpe(positions))
        embeddings = module_at(base, self.embeddings_path)
        if self.uses_token_type_ids and token_type_ids is not None:
            hidden = embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        else:
            hidden = embeddings(input_ids=input_ids)
        if self.embedding_projection_path is not None:
            hidden = module_at(base, self.embedding_projection_path)(hidden)
        return hidden

    def run_block(
        self,
        model: nn.Module,
        layer: int,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state ``layer + 1`` from hidden state ``layer``.

        Pass ``attention_mask=None`` for unpadded sequences (the IG fast path trims padding): that is
        the portable call. A non-None mask must already be in the format the installed transformers
        version's block expects; padded batches should go through the full model forward instead.
        """
        self._require("run_block")
        block = self.blocks(model)[layer]
        if (attention_mask is None and self.family == "distilbert" and _TRANSFORMERS_MAJOR < 5
                and type(block.attention).__name__ != "DistilBertSdpaAttention"):
            # 4.x DistilBERT eager attention needs its 2-d keep-mask even without padding (its SDPA class
            # hands the mask to SDPA as it is, where None is the unpadded case).
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        if self.family == "albert":
            # Call the group's layers one by one: 4.x AlbertLayerGroup insists on a head_mask list.
            for albert_layer in block.albert_layers:
                hidden = _first_tensor(albert_layer(hidden, attention_mask))
            return hidden
        return _first_tensor(block(hidden, attention_mask))

    def qa_logits(self, model: nn.Module, last_hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits, each (batch, seq), from the last block's output."""
        self._require("qa_logits")
        logits = self.qa_head(model)(last_hidden)
        start, end = logits.split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)

    def classifier_logits(self, model: nn.Module, last_hidden: torch.Tensor) -> torch.Tensor:
        """(batch, num_labels) logits of a ...ForSequenceClassification model from the last block's
        output: each family's own head (BERT/ALBERT pool the first token through their pooler, RoBERTa and
        ELECTRA have a classification head on the sequence, DistilBERT a pre-classifier), eval mode."""
        self._require("classifier_logits")
        if self.family in ("roberta", "electra"):
            return model.classifier(last_hidden)
        if self.family == "distilbert":
            return model.classifier(torch.relu(model.pre_classifier(last_hidden[:, 0])))
        base = self.base_model(model)
        if self.family == "albert":
            pooled = base.pooler_activation(base.pooler(last_hidden[:, 0]))
        else:
            pooled = base.pooler(last_hidden)
        return model.classifier(model.dropout(pooled))

    def logits_from_layer(
        self,
        model: nn.Module,
        layer: int,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run blocks ``layer..L-1`` on hidden state ``layer`` and return the QA logits."""
        self._require("logits_from_layer")
        for block_index in range(layer, self.num_layers(model)):
            hidden = self.run_block(model, block_index, hidden, attention_mask)
        return self.qa_logits(model, hidden)


_BERT_LIKE = dict(
    embeddings_path="embeddings",
    blocks_path="encoder.layer",
    attention_output_projection_path="attention.output.dense",
    value_projection_path="attention.self.value",
    self_attention_path="attention.self",
    block_layout=BlockLayout(
        query="attention.self.query", key="attention.self.key", value="attention.self.value",
        attention_output="attention.output.dense", attention_norm="attention.output.LayerNorm",
        ffn_in="intermediate.dense", activation="intermediate.intermediate_act_fn", ffn_out="output.dense",
        output_norm="output.LayerNorm",
    ),
)

ADAPTERS: dict[str, ArchitectureAdapter] = {
    "bert": ArchitectureAdapter("bert", ("bert",), "bert", **_BERT_LIKE),
    "roberta": ArchitectureAdapter(
        "roberta", ("roberta", "xlm-roberta", "camembert"), "roberta", **_BERT_LIKE
    ),
    "electra": ArchitectureAdapter(
        "electra", ("electra",), "electra", embedding_projection_path="embeddings_project", **_BERT_LIKE
    ),
    "albert": ArchitectureAdapter(
        "albert",
        ("albert",),
        "albert",
        embeddings_path="embeddings",
        blocks_path="encoder.albert_layer_groups",
        attention_output_projection_path="attention.dense",
        value_projection_path="attention.value",
        self_attention_path="attention",
        embedding_projection_path="encoder.embedding_hidden_mapping_in",
        block_layout=BlockLayout(
            query="attention.query", key="attention.key", value="attention.value",
            attention_output="attention.dense", attention_norm="attention.LayerNorm", ffn_in="ffn",
            activation="activation", ffn_out="ffn_output", output_norm="full_layer_layer_norm",
        ),
    ),
    "distilbert": ArchitectureAdapter(
        "distilbert",
        ("distilbert",),
        "distilbert",
        embeddings_path="embeddings",
        blocks_path="transformer.layer",
        attention_output_projection_path="attention.out_lin",
        value_projection_path="attention.v_lin",
        self_attention_path="attention",
        uses_token_type_ids=False,
        block_layout=BlockLayout(
            query="attention.q_lin", key="attention.k_lin", value="attention.v_lin",
            attention_output="attention.out_lin", attention_norm="sa_layer_norm", ffn_in="ffn.lin1",
            activation="ffn.activation", ffn_out="ffn.lin2", output_norm="output_layer_norm",
        ),
    ),
}


_NO_TASK_HEAD = "bert_insight gives GPT-2 handles no task head (a GPT-2 model is wrapped as a plain ModelHandle)"
_NO_BLOCK_BY_BLOCK = (
    "running GPT-2 block by block is not supported: a block called on its own gets no causal mask from "
    "transformers 5 (eager attention would let every token see later ones), and hidden state L has the final "
    "LayerNorm ln_f applied, so layer IG, DeepLIFT and head-ablation sweeps would get wrong states"
)
_FUSED_QKV = (
    "GPT-2 computes queries, keys and values with one fused Conv1D (attn.c_attn) and projects the heads' "
    "context vectors with a Conv1D (attn.c_proj), so there is no nn.Linear value / output projection for "
    "head ablation to hook"
)

#: Causal decoders: hidden states only (no QA or classifier head, no block-by-block runs, no head ablation).
DECODER_ADAPTERS: dict[str, ArchitectureAdapter] = {
    "gpt2": ArchitectureAdapter(
        "gpt2",
        ("gpt2",),
        "transformer",
        embeddings_path="wte",  # plus wpe; ``embed`` adds both
        blocks_path="h",
        attention_output_projection_path="attn.c_proj",
        value_projection_path="attn.c_attn",
        self_attention_path="attn",
        qa_head_path="",
        # GPT-2's forward embeds token_type_ids with the token embedding matrix wte: never pass segments.
        uses_token_type_ids=False,
        causal=True,
        unsupported=(
            ("value_projection", _FUSED_QKV),
            ("attention_output_projection", _FUSED_QKV),
            ("run_block", _NO_BLOCK_BY_BLOCK),
            ("logits_from_layer", _NO_BLOCK_BY_BLOCK),
            ("qa_head", _NO_TASK_HEAD),
            ("qa_logits", _NO_TASK_HEAD),
            ("classifier_logits", _NO_TASK_HEAD),
        ),
    ),
}

def adapter_for(model_or_config) -> ArchitectureAdapter:
    """The adapter for a model (or its config): an encoder family of :data:`ADAPTERS` or a decoder of
    :data:`DECODER_ADAPTERS`; a clear error for unsupported families."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    for adapter in (*ADAPTERS.values(), *DECODER_ADAPTERS.values()):
        if model_type in adapter.model_types:
            return adapter
    supported = ", ".join(sorted(ADAPTERS))
    raise BertInsightInputError(
        f"Model type {model_type!r} is not supported; bert_insight handles the families {supported} (and GPT-2, "
        "'gpt2', for hidden states only). Pass a checkpoint of one of those (e.g. 'bert-base-uncased' or a "
        "fine-tuned SQuAD model)."
    )


def require_encoder(adapter: ArchitectureAdapter, what: str, name: str) -> ArchitectureAdapter:
    """``adapter`` if it is an encoder family; for a causal decoder (GPT-2) one BertInsightInputError saying
    that ``what`` (e.g. "question answering") needs an encoder."""
    if adapter.causal:
        raise BertInsightInputError(
            f"{name!r} is a {adapter.family} model: bert_insight reads its hidden states only (load it with "
            f"bert_insight.load_base_model or from_model, then call hidden_states). {what} needs an encoder of "
            f"one of the families {', '.join(sorted(ADAPTERS))}."
        )
    return adapter
