"""Data sets as tidy frames: QA examples frames and GLUE sentence-examples frames.

QA (example_id, question, context, answers, is_impossible, title): ``load_squad`` reads SQuAD 1.1 / 2.0
(bundled dev, a local file, or a Hugging Face name); ``load_duorc``, ``load_hotpotqa`` and ``load_babi``
read those data sets' own layouts (a small bundled slice by default); ``validate_examples`` checks any
examples frame, including one built by hand.

GLUE (example_id, text_a, text_b, label, task): ``load_glue`` reads a GLUE task's tsv files (only QNLI
dev is bundled; the other tasks come from a local GLUE folder or `datasets`); ``glue_task`` and
``GLUE_TASKS`` describe the tasks; ``validate_sentence_examples`` checks a frame built by hand;
``split_examples`` makes a seeded, label-stratified train/test split.

QA probing (van Aken et al. 2019): ``context_sentences`` (each context's sentences, which support the
answer), ``supporting_facts_task`` and ``question_type_task`` (edge-probing tasks).
"""

from bert_insight.data.examples import nearest_questions, validate_examples
from bert_insight.data.glue import GLUE_TASKS, glue_task, load_glue, split_examples, validate_sentence_examples
from bert_insight.data.qa_probing import context_sentences, question_type_task, supporting_facts_task
from bert_insight.data.readers import load_babi, load_duorc, load_hotpotqa
from bert_insight.data.squad import HELDOUT_TITLES, load_squad

__all__ = ["GLUE_TASKS", "HELDOUT_TITLES", "context_sentences", "glue_task", "nearest_questions", "load_babi", "load_duorc", "load_glue", "load_hotpotqa",
           "load_squad", "question_type_task", "split_examples", "supporting_facts_task", "validate_examples", "validate_sentence_examples"]
