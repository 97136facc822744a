"""The SFT filter: keep verified-correct teacher trajectories, deduplicated, decontaminated, within limits.

Rules, in order (each trajectory is dropped for the first rule it breaks, counted per reason):

1. ``infra_error`` - an execution failed in the sandbox itself;
2. ``incorrect`` - not verified correct (score < 1 or unscored);
3. ``contaminated`` - its question's content shares an n-gram (``decontam_ngram`` words/punctuation, lower
   case) with a test question's (the corpus' test_seen + test_unseen pools). n-grams found in at least
   ``decontam_template_df`` distinct questions (test questions + the trajectories' questions) are a
   family's template text and are cut out first; a content span shorter than n is compared whole
   (see `Decontaminator`);
4. ``duplicate`` - the same conversation as a trajectory kept before;
5. ``near_duplicate`` - for the same question, a trajectory kept before ran the same programs (up to
   whitespace) to the same answer, or its assistant text's word 3-gram Jaccard similarity with this one's
   is at least ``near_duplicate``;
6. ``too_long`` - more than ``max_tokens`` tokens with the chat template (when a tokenizer is given);
7. ``family_cap`` - beyond ``cap_per_family`` for its family (kept spread over questions: every question's
   first sample before any second one, then input order);
8. ``balance`` - with ``code_share`` set, the larger of code-using / text-only groups is thinned (seeded) so
   that code-using trajectories make that share of the result (nothing is dropped when one group is empty).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from .config import FilterConfig
from .trajectory import Trajectory

REASONS = ("infra_error", "incorrect", "contaminated", "duplicate", "near_duplicate", "too_long", "family_cap",
           "balance")

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    """Lower-case words and single punctuation characters."""
    return _TOKEN_RE.findall(text.lower())


def ngrams(toks: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The n-grams of `toks`; a sequence shorter than n gives itself (if not empty)."""
    if len(toks) < n:
        return {tuple(toks)} if toks else set()
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def question_of(traj: Trajectory) -> str:
    return next((m["content"] for m in traj.messages if m["role"] == "user"), "")


class Decontaminator:
    """Flags questions whose content shares an n-gram with a test question's content.

    A family's template (its fixed wording) would make every question of a family overlap its test
    questions, so n-grams found in at least `template_df` distinct questions (test + `other_questions`)
    are template, and the tokens they cover are cut out: what remains are a question's content spans
    (numbers, words, expressions). A span of at least `n` tokens contributes its n-grams; a shorter one
    (with at least two word tokens) is compared whole.
    """

    def __init__(self, test_questions: Iterable[str], n: int = 13, template_df: int = 5,
                 other_questions: Iterable[str] = ()):
        self.n = n
        test = {" ".join(t): t for t in (tokens(q) for q in test_questions)}
        everything = dict(test)
        for q in other_questions:
            t = tokens(q)
            everything.setdefault(" ".join(t), t)
        df: Counter = Counter()
        for toks in everything.values():
            df.update(ngrams(toks, n))
        self.template = {g for g, c in df.items() if c >= template_df}
        self.index: set[tuple[str, ...]] = set()
        for toks in test.values():
            self.index |= self.content_grams(toks)

    def content_spans(self, toks: Sequence[str]) -> list[list[str]]:
        """`toks` minus the tokens covered by template n-grams, as runs of consecutive tokens."""
        n = self.n
        covered = [False] * len(toks)
        if len(toks) < n:
            covered = [tuple(toks) in self.template] * len(toks)
        for i in range(len(toks) - n + 1):
            if tuple(toks[i : i + n]) in self.template:
                covered[i : i + n] = [True] * n
        spans: list[list[str]] = [[]]
        for tok, cov in zip(toks, covered, strict=True):
            if cov:
                if spans[-1]:
                    spans.append([])
            else:
                spans[-1].append(tok)
        return [sp for sp in spans if sum(1 for t in sp if t[0].isalnum() or t[0] == "_") >= 2]

    def content_grams(self, toks: Sequence[str]) -> set[tuple[str, ...]]:
        grams: set[tuple[str, ...]] = set()
        for span in self.content_spans(toks):
            grams |= ngrams(span, self.n)
        return grams

    def contaminated(self, question: str) -> bool:
        return not self.index.isdisjoint(self.content_grams(tokens(question)))


def assistant_shingles(traj: Trajectory, n: int = 3) -> set[tuple[str, ...]]:
    text = "\n".join(m["content"] for m in traj.messages if m["role"] == "assistant")
    return ngrams(tokens(text), n)


def _program_signature(traj: Trajectory) -> tuple | None:
    """The programs a trajectory ran (whitespace-normalised) and its answer; None without code."""
    if not traj.executions:
        return None
    return tuple(" ".join(e.code.split()) for e in traj.executions), traj.final_answer


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def n_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
    return len(out["input_ids"])


def filter_trajectories(
    trajectories: list[Trajectory], cfg: FilterConfig, tokenizer: Any | None = None, *,
    test_questions: Iterable[str] = (),
) -> tuple[list[Trajectory], dict[str, int]]:
    """Kept trajectories (in input order) and the count dropped per reason (see the module doc)."""
    dropped: Counter = Counter()
    test_questions = list(test_questions)
    decon = None
    if cfg.decontaminate and test_questions:
        decon = Decontaminator(test_questions, cfg.decontam_ngram, cfg.decontam_template_df,
                               other_questions=(question_of(t) for t in trajectories))
    seen: set[str] = set()
    shingles_by_question: dict[str, list[tuple[Any, set]]] = {}
    candidates: list[tuple[int, Trajectory]] = []
    for idx, traj in enumerate(trajectories):
        question = question_of(traj)
        if traj.infra_error or traj.score is None and traj.finish_reason == "infra_error":
            dropped["infra_error"] += 1
            continue
        if traj.score is None or traj.score < 1.0:
            dropped["incorrect"] += 1
            continue
        if decon is not None and decon.contaminated(question):
            dropped["contaminated"] += 1
            continue
        key = json.dumps(traj.messages, sort_keys=True)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        sh = assistant_shingles(traj)
        qkey = " ".join(tokens(question))
        program = _program_signature(traj)
        earlier = shingles_by_question.get(qkey, ())
        if any((program is not None and program == p) or jaccard(sh, other) >= cfg.near_duplicate
               for p, other in earlier):
            dropped["near_duplicate"] += 1
            continue
        if tokenizer is not None and n_tokens(tokenizer, traj.messages) > cfg.max_tokens:
            dropped["too_long"] += 1
            continue
        seen.add(key)
        shingles_by_question.setdefault(qkey, []).append((program, sh))
        candidates.append((idx, traj))

    # family cap: each question's first kept sample before its second, then input order
    rank: Counter = Counter()
    ranked = []
    for idx, traj in candidates:
        ranked.append((rank[traj.item_id], idx, traj))
        rank[traj.item_id] += 1
    per_family: Counter = Counter()
    capped: list[tuple[int, Trajectory]] = []
    for _, idx, traj in sorted(ranked, key=lambda x: (x[0], x[1])):
        if per_family[traj.family] >= cfg.cap_per_family:
            dropped["family_cap"] += 1
            continue
        per_family[traj.family] += 1
        capped.append((idx, traj))
    capped.sort(key=lambda x: x[0])

    if cfg.code_share is not None:
        capped, n_balance = _balance(capped, cfg.code_share, cfg.seed)
        if n_balance:
            dropped["balance"] += n_balance
    return [t for _, t in capped], dict(dropped)


def _balance(kept: list[tuple[int, Trajectory]], share: float, seed: int) -> tuple[list[tuple[int, Trajectory]], int]:
    """Thin the larger of code-using / text-only so code-using make `share` of the result (seeded choice)."""
    code = [x for x in kept if x[1].n_code_calls > 0]
    text = [x for x in kept if x[1].n_code_calls == 0]
    if share >= 1.0:
        want_code, want_text = len(code), 0
    elif share <= 0.0:
        want_code, want_text = 0, len(text)
    elif not code or not text:
        return kept, 0  # nothing to balance against
    else:
        total = min(len(code) / share, len(text) / (1.0 - share))
        want_code, want_text = min(len(code), round(share * total)), min(len(text), round((1 - share) * total))
    rng = random.Random(seed)
    keep = rng.sample(code, want_code) + rng.sample(text, want_text)
    keep.sort(key=lambda x: x[0])
    return keep, len(kept) - len(keep)
