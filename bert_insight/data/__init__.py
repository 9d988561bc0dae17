"""QA data sets as examples frames (example_id, question, context, answers, is_impossible, title).

``load_squad`` reads SQuAD 1.1 / 2.0 (bundled dev, a local file, or a Hugging Face name); ``load_duorc``,
``load_hotpotqa`` and ``load_babi`` read those data sets' own layouts (a small bundled slice by
default); ``validate_examples`` checks any examples frame, including one built by hand.
"""

from bert_insight.data.examples import validate_examples
from bert_insight.data.readers import load_babi, load_duorc, load_hotpotqa
from bert_insight.data.squad import HELDOUT_TITLES, load_squad

__all__ = ["HELDOUT_TITLES", "load_babi", "load_duorc", "load_hotpotqa", "load_squad", "validate_examples"]
