"""DuoRC, HotpotQA and bAbI into the examples frame (answers located in the context by search)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from bert_insight._compat import keywords_only, renamed
from bert_insight.data._files import as_local_path, bundled_path, locate_answer, read_json, read_text
from bert_insight.data.examples import make_frame, validate_examples
from bert_insight.errors import BertInsightInputError

BUNDLED_DUORC = "duorc_selfrc_dev_slice.json.gz"
BUNDLED_HOTPOTQA = "hotpotqa_dev_distractor_first10.json.gz"
BUNDLED_BABI = "babi_qa1_single-supporting-fact_test_first5.txt"


def _located_answers(context: str, texts: list[str], prefer: list[tuple[int, int]] = ()) -> list[dict[str, Any]]:
    """The given answer texts that occur in ``context``, with their answer_start (duplicates dropped)."""
    answers, seen = [], set()
    for text in texts:
        hit = locate_answer(context, text, prefer)
        if hit is not None and hit not in seen:
            seen.add(hit)
            answers.append({"text": hit[1], "answer_start": hit[0]})
    return answers


def _source(path: str | os.PathLike | None, bundled: str, what: str) -> tuple[Path, str]:
    if path is None:
        return bundled_path(bundled), f"bundled:{bundled}"
    local = as_local_path(path, what)
    return local, str(local)


@renamed(path="source")
def load_duorc(source: str | os.PathLike | None = None) -> pd.DataFrame:
    """DuoRC (SelfRC or ParaphraseRC) questions as an examples frame.

    ``source``: None (the bundled slice) or a DuoRC json (.json / .json.gz / .zip): either the original layout (a list of movies
    ``{id, title, plot, qa: [{id, question, answers, no_answer}]}``) or rows of the Hugging Face
    layout ``{plot_id, plot, title, question_id, question, answers, no_answer}``. None = the bundled
    slice (one SelfRC dev movie, "The Forbidden Kingdom").

    DuoRC gives answers as text only, so each is searched in the plot as whole words (exact case,
    then ignoring case, then without trailing punctuation). Returns a DataFrame with columns
    example_id (the question id), question, context (the plot), answers (the located answers),
    is_impossible (no_answer, or no answer text found in the plot), title, plus answer_texts (the
    answers as given), answer_found (bool), no_answer (bool), plot_id.
    """
    path, source = _source(source, BUNDLED_DUORC, "load_duorc")
    data = read_json(path)
    rows = data if isinstance(data, list) else data.get("data", []) if isinstance(data, dict) else []
    if not rows or not isinstance(rows[0], dict) or not ({"plot", "qa"} <= rows[0].keys() or "question" in rows[0]):
        raise BertInsightInputError(
            f"{source} is not in a DuoRC layout: expected a list of movies {{id, title, plot, qa}} or of "
            "question rows {plot_id, plot, title, question_id, question, answers, no_answer}.")
    if "qa" in rows[0]:  # original layout: one item per movie
        rows = [{"plot_id": movie.get("id", ""), "plot": movie["plot"], "title": movie.get("title", ""),
                 "question_id": qa["id"], "question": qa["question"], "answers": qa.get("answers", []),
                 "no_answer": qa.get("no_answer", False)} for movie in rows for qa in movie["qa"]]
    records = []
    for row in rows:
        texts = [t for t in row.get("answers", []) if isinstance(t, str)]
        answers = [] if row.get("no_answer") else _located_answers(row["plot"], texts)
        records.append({
            "example_id": str(row["question_id"]), "question": row["question"], "context": row["plot"],
            "answers": answers, "is_impossible": not answers, "title": row.get("title", ""),
            "answer_texts": texts, "answer_found": bool(answers), "no_answer": bool(row.get("no_answer")),
            "plot_id": row.get("plot_id", ""),
        })
    return validate_examples(make_frame(records, {"dataset": "duorc", "source": source}))


def _hotpot_paragraphs(item: dict[str, Any]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, int]]]:
    """(title, sentences) paragraphs and (title, sentence index) supporting facts, in either layout."""
    context, facts = item["context"], item.get("supporting_facts", [])
    if isinstance(context, dict):  # Hugging Face layout: {"title": [...], "sentences": [[...], ...]}
        paragraphs = list(zip(context["title"], context["sentences"]))
    else:  # official layout: [[title, [sentences]], ...]
        paragraphs = [(title, sentences) for title, sentences in context]
    if isinstance(facts, dict):
        facts = list(zip(facts["title"], facts["sent_id"]))
    return paragraphs, [(str(title), int(index)) for title, index in facts]


@renamed(path="source")
def load_hotpotqa(source: str | os.PathLike | None = None) -> pd.DataFrame:
    """HotpotQA questions as an examples frame, the paragraphs joined into one context.

    ``source``: None (the bundled slice) or a HotpotQA json (.json / .json.gz / .zip) in the Hugging Face layout (context =
    {title, sentences}, supporting_facts = {title, sent_id}) or the official one (lists of pairs).
    None = the bundled slice (the first 10 questions of dev, distractor setting).

    The context is one line per paragraph, "<title>: <sentence> <sentence> ...". The answer is
    searched in the supporting sentences first, then anywhere; yes/no answers are not spans.
    Returns a DataFrame with columns example_id (the HotpotQA id, else "hotpotqa-<position in file>"),
    question, context, answers, is_impossible (no answer span found), title (the supporting
    paragraphs' titles joined by " | "), plus answer_text (as given), answer_found (bool), type, level,
    supporting_facts (list of (title, sentence index)), supporting_spans (list of (char_start,
    char_end) of those sentences in the context; facts pointing past a paragraph's end are skipped).
    """
    path, source = _source(source, BUNDLED_HOTPOTQA, "load_hotpotqa")
    data = read_json(path)
    if not isinstance(data, list) or not data or not {"question", "answer", "context"} <= set(data[0]):
        raise BertInsightInputError(
            f"{source} is not in the HotpotQA layout: expected a list of {{question, answer, context, "
            "supporting_facts}} items.")
    records = []
    for position, item in enumerate(data):
        paragraphs, facts = _hotpot_paragraphs(item)
        lines, sentence_spans, offset = [], {}, 0
        for title, sentences in paragraphs:
            line = f"{title}:"
            for index, sentence in enumerate(sentences):
                line += " "
                sentence_spans[(title, index)] = (offset + len(line), offset + len(line) + len(sentence.strip()))
                line += sentence.strip()
            lines.append(line)
            offset += len(line) + 1  # the "\n" joining paragraphs
        context = "\n".join(lines)
        supporting_spans = [sentence_spans[fact] for fact in facts if fact in sentence_spans]
        answers = _located_answers(context, [item["answer"]], supporting_spans)
        records.append({
            "example_id": str(item.get("id") or item.get("_id") or f"hotpotqa-{position:05d}"),
            "question": item["question"], "context": context, "answers": answers, "is_impossible": not answers,
            "title": " | ".join(dict.fromkeys(title for title, _ in facts)),
            "answer_text": item["answer"], "answer_found": bool(answers), "type": item.get("type"),
            "level": item.get("level"), "supporting_facts": facts, "supporting_spans": supporting_spans,
        })
    return validate_examples(make_frame(records, {"dataset": "hotpotqa", "source": source}))


def _babi_file(path_or_dir: str | os.PathLike | None, task: int, split: str) -> tuple[Path, str]:
    if path_or_dir is None:
        if (task, split) != (1, "test"):
            raise BertInsightInputError(
                f"the bundled bAbI slice holds only task 1, split 'test' (5 stories); for task={task}, "
                f"split={split!r} pass the folder of the bAbI 'en' tasks (qa{task}_*_{split}.txt).")
        return bundled_path(BUNDLED_BABI), f"bundled:{BUNDLED_BABI}"
    local = as_local_path(path_or_dir, "load_babi")
    if local.is_file():
        return local, str(local)
    for folder in (local, local / "en"):
        matches = sorted(folder.glob(f"qa{task}_*_{split}.txt"))
        if matches:
            return matches[0], str(matches[0])
    raise BertInsightInputError(
        f"no bAbI file qa{task}_*_{split}.txt in {str(local)!r} (or its en/ folder). Pass the folder that "
        "holds the official qa1_..._train.txt / _test.txt files, or one such file.")


@keywords_only("task", "split")
@renamed(path_or_dir="source")
def load_babi(source: str | os.PathLike | None = None, *, task: int = 1, split: str = "test") -> pd.DataFrame:
    """bAbI questions (official text format) as an examples frame.

    ``source``: None (the bundled slice), a bAbI task file, or a folder holding ``qa{task}_*_{split}.txt`` (or its ``en/``
    subfolder). None = the bundled slice (task 1, test, first 5 stories).

    Each question's context is its story's statements so far, joined by spaces (question lines are
    left out). The answer is searched in the supporting statements first, then anywhere; answers
    that are not words of the story (yes/no, counts, lists) leave answers empty. Returns a DataFrame
    with columns example_id ("babi-qa<task>-<split>-<story>-<line id>"), question, context, answers,
    is_impossible (no answer span found), title ("qa<task> story <n>"), plus answer_text (as given),
    answer_found (bool), task, story_index, supporting_fact_ids (the story line ids), supporting_spans
    ((char_start, char_end) of those lines in the context).
    """
    if task not in range(1, 21):
        raise BertInsightInputError(f"task must be an int from 1 to 20, got {task!r}.")
    if split not in ("train", "test"):
        raise BertInsightInputError(f"split must be 'train' or 'test', got {split!r}.")
    path, source = _babi_file(source, task, split)
    named = re.match(r"qa(\d+)_.*?(?:_(train|test))?\.txt$", path.name)
    if named:  # an explicit file says its own task and split
        task, split = int(named.group(1)), named.group(2) or split
    records, story_index, statements = [], 0, []
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        line_id, _, text = line.partition(" ")
        if not line_id.isdigit():
            raise BertInsightInputError(
                f"{source} line {line_number} does not start with a line id: {line!r}. Expected the official "
                "bAbI format 'ID text' / 'ID question<TAB>answer<TAB>supporting ids'.")
        if line_id == "1":
            story_index, statements = story_index + 1, []
        if "\t" not in text:
            statements.append((int(line_id), text.strip()))
            continue
        question, answer, support = (text.split("\t") + ["", ""])[:3]
        spans, offset = {}, 0
        for statement_id, statement in statements:
            spans[statement_id] = (offset, offset + len(statement))
            offset += len(statement) + 1
        context = " ".join(statement for _, statement in statements)
        fact_ids = [int(i) for i in support.split()]
        supporting_spans = [spans[i] for i in fact_ids if i in spans]
        answers = _located_answers(context, [answer.strip()], supporting_spans)
        records.append({
            "example_id": f"babi-qa{task}-{split}-{story_index}-{line_id}", "question": question.strip(),
            "context": context, "answers": answers, "is_impossible": not answers,
            "title": f"qa{task} story {story_index}", "answer_text": answer.strip(), "answer_found": bool(answers),
            "task": task, "story_index": story_index, "supporting_fact_ids": fact_ids,
            "supporting_spans": supporting_spans,
        })
    return validate_examples(make_frame(records, {"dataset": "babi", "task": task, "split": split, "source": source}))
