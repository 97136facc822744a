"""SymBench string / counting simulations: String Deletion & Modification, String Synthesis, String Splitting,
Synthesis Decomposition, Statistical Counting, Mahjong, Letters, Cryptanalysis."""

from __future__ import annotations

import itertools
import random
import re
import string

from ..base import Item, Verdict
from ._common import UNPARSEABLE, SymbenchTask, int_tokens, strip_wrappers, tokens, verdict

# ---------------------------------------------------------------- String Deletion and Modification
# (official rule text, Python condition, Python result) -- the text is the official wording, the code ours.
DELETION_RULES: list[tuple[str, str, str]] = [
    ("If the string prefix is 'ab', replace it with 'ca'.", "s.startswith('ab')", "'ca' + s[2:]"),
    ("If the string suffix is 'ac', replace it with 'cb'.", "s.endswith('ac')", "s[:-2] + 'cb'"),
    ("If the string prefix is 'bc', delete the first two characters and append 'aa' to the end.",
     "s.startswith('bc')", "s[2:] + 'aa'"),
    ("If the string suffix is 'bb', delete the last two characters.", "s.endswith('bb')", "s[:-2]"),
    ("If the string prefix is 'cb', replace it with 'aa' and delete the last character.",
     "s.startswith('cb')", "'aa' + s[2:-1]"),
    ("If the string prefix is 'ca', replace it with 'bb' and append 'c' to the end.",
     "s.startswith('ca')", "'bb' + s[2:] + 'c'"),
    ("If the string suffix is 'cc', replace it with 'b' and prepend 'a' to the start.",
     "s.endswith('cc')", "'a' + s[:-2] + 'b'"),
    ("If the string prefix is 'aa', remove the first character.", "s.startswith('aa')", "s[1:]"),
    ("If the string contains 'abc', replace the first occurrence with 'cab'.", "'abc' in s",
     "s.replace('abc', 'cab', 1)"),
    ("If the string contains 'bca', delete the first occurrence entirely.", "'bca' in s", "s.replace('bca', '', 1)"),
    ("If the string ends with 'ba', replace it with 'ab'.", "s.endswith('ba')", "s[:-2] + 'ab'"),
    ("If the string starts with 'cc', remove the first two characters.", "s.startswith('cc')", "s[2:]"),
    ("If the string contains 'acb', replace the first occurrence with its reverse ('bca').", "'acb' in s",
     "s.replace('acb', 'bca', 1)"),
    ("If the string ends with 'ca', remove the last character.", "s.endswith('ca')", "s[:-1]"),
    ("If the string starts with 'bb', remove the second character.", "s.startswith('bb')", "s[0] + s[2:]"),
    ("If the string ends with 'aa', replace it with 'cc'.", "s.endswith('aa')", "s[:-2] + 'cc'"),
    ("If the string contains 'ca' (not at the start), remove the first occurrence found after the first "
     "character.", "s.find('ca', 1) != -1", "s[:s.find('ca', 1)] + s[s.find('ca', 1) + 2:]"),
    ("If the string contains an even number of 'b's (and at least one 'b'), append 'ab' at the end.",
     "s.count('b') > 0 and s.count('b') % 2 == 0", "s + 'ab'"),
    ("If the string length is greater than 15, remove the middle character.", "len(s) > 15",
     "s[:len(s) // 2] + s[len(s) // 2 + 1:]"),
    ("If the string starts with 'ac', replace the first two characters with 'zz'.", "s.startswith('ac')",
     "'zz' + s[2:]"),
]
DELETION_BY_TEXT = {text: i for i, (text, _, _) in enumerate(DELETION_RULES)}


def run_deletion(s: str, rule_ids: list[int], limit: int = 500) -> str | None:
    """Apply the first applicable rule until none applies; None when it does not stop within `limit` steps."""
    compiled = [(eval(f"lambda s: {DELETION_RULES[i][1]}"), eval(f"lambda s: {DELETION_RULES[i][2]}"))
                for i in rule_ids]
    for _ in range(limit):
        for cond, act in compiled:
            if cond(s):
                s = act(s)
                break
        else:
            return s
    return None


class StringDeletionModification(SymbenchTask):
    name = "string_deletion_and_modification"
    description = "Apply string rewriting rules in order until none applies; give the final string."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            s = "".join(rng.choice("abc") for _ in range(rng.randint(8, 20)))
            rules = rng.sample(range(len(DELETION_RULES)), rng.randint(4, 6))
            final = run_deletion(s, rules, limit=60)
            if final is not None and final != s:
                break
        return self.make(self.question(s, rules), final, initial_string=s, rule_ids=rules,
                         selected_rules=[DELETION_RULES[i][0] for i in rules])

    @staticmethod
    def question(s: str, rules: list[int]) -> str:
        listed = "\n".join(f"{k + 1}. {DELETION_RULES[i][0]}" for k, i in enumerate(rules))
        return (
            "Cycle through the following operations one at a time until no further operations can be performed:\n\n"
            f"{listed}\n\nFor the string \"{s}\", what is the final string after performing all operations?\n\n"
            "Provide your answer as a string in the following format:\n\n<<< \"some_final_string\" >>>\n"
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return UNPARSEABLE
        got = strip_wrappers(answer)
        if not re.fullmatch(r"[a-z]*", got):
            return UNPARSEABLE
        return verdict(got == item.answer)

    def reference_solution(self, item: Item) -> str:
        rules = ",\n    ".join(
            f"(lambda s: {DELETION_RULES[i][1]}, lambda s: {DELETION_RULES[i][2]})" for i in item.metadata["rule_ids"])
        return (
            f"s = '{item.metadata['initial_string']}'\n"
            f"rules = [  # (condition, operation) in the given order\n    {rules},\n]\n"
            "while True:\n"
            "    for cond, op in rules:\n"
            "        if cond(s):\n"
            "            s = op(s)\n"
            "            break\n"
            "    else:\n"
            "        break\n"
            "print(f'<<<\"{s}\">>>')\n"
        )


# ---------------------------------------------------------------- String Synthesis
BLOCKS = ["[A]", "[B]", "[C]", "{A}", "{B}", "{C}", "(A)", "(B)", "(C)"]
SYNTH_METHODS: list[tuple[dict[str, int], dict[str, int]]] = [
    ({"[A]": 1, "[B]": 1, "[C]": 1}, {"{A}": 1}),
    ({"[A]": 1, "[B]": 1}, {"{C}": 1}),
    ({"[B]": 1, "[C]": 1}, {"{B}": 1}),
    ({"[C]": 2}, {"{C}": 1}),
    ({"{A}": 1, "{C}": 1}, {"(A)": 1, "(B)": 1}),
    ({"{B}": 2}, {"(C)": 1}),
]
_WORDS = {1: "One", 2: "Two", 3: "Three", 4: "Four"}
_NUM = {"one": 1, "two": 2, "three": 3, "four": 4, "a": 1, "an": 1}


def _describe(part: dict[str, int]) -> str:
    items = [f"{_WORDS[n].lower()} {b}" for b, n in part.items()]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + (", and " if len(items) > 2 else " and ") + items[-1]


def synth_method_text(need: dict[str, int], make: dict[str, int]) -> str:
    text = f"{_describe(need)} can be combined to form {_describe(make)}."
    return text[0].upper() + text[1:]


def parse_synth_method(text: str) -> tuple[dict[str, int], dict[str, int]] | None:
    """Parse 'One [A] and one [B] can be combined to form one {C}.' into (inputs, outputs)."""
    if "can be combined to form" not in text:
        return None
    left, right = text.split("can be combined to form", 1)

    def side(s: str) -> dict[str, int]:
        return {b: (_NUM.get(n.lower()) or int(n)) for n, b in
                re.findall(r"(\w+)\s+([\[{(][ABC][\]})])", s)}

    need, make = side(left), side(right)
    return (need, make) if need and make else None


def run_synthesis(counts: dict[str, int], methods: list) -> dict[str, int]:
    counts = dict(counts)
    changed = True
    while changed:
        changed = False
        for need, make in methods:
            if all(counts.get(k, 0) >= v for k, v in need.items()):
                for k, v in need.items():
                    counts[k] -= v
                for k, v in make.items():
                    counts[k] = counts.get(k, 0) + v
                changed = True
    return counts


class StringSynthesis(SymbenchTask):
    name = "string_synthesis"
    description = "Combine blocks with cyclic synthesis rules until nothing changes; count each block."

    def _generate_one(self, rng: random.Random) -> Item:
        a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 9)
        methods = [[need, make] for need, make in SYNTH_METHODS]
        return self._item(a, b, c, methods)

    def _item(self, a: int, b: int, c: int, methods: list) -> Item:
        start = dict.fromkeys(BLOCKS, 0) | {"[A]": a, "[B]": b, "[C]": c}
        final = run_synthesis(start, methods)
        listed = "\n".join(f"{i + 1}. {synth_method_text(n, m)}" for i, (n, m) in enumerate(methods))
        question = (
            "There are nine different blocks [A], [B], [C], {A}, {B}, {C}, (A), (B), (C) that satisfy:\n"
            f"{listed}\n\nCycle through Methods 1..{len(methods)} repeatedly until no more changes can be made.\n\n"
            f"Question: If we now have {a} [A], {b} [B], and {c} [C], what will the synthesized block be?\n\n"
            "Return your final answer with the exact format:\n<<<a string of the number of certain block>>>\n"
            "Your answer:\n"
        )
        answer = " ".join(str(final[k]) for k in BLOCKS)
        return self.make(question, answer, counts=[a, b, c], methods=methods)

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is not None and len(got) == 1 and len(strip_wrappers(answer)) == 9:
            got = [int(ch) for ch in strip_wrappers(answer)]
        if got is None or len(got) != 9:
            return UNPARSEABLE
        return verdict(got == [int(x) for x in item.answer.split()])

    def reference_solution(self, item: Item) -> str:
        a, b, c = item.metadata["counts"]
        return (
            f"counts = {{'[A]': {a}, '[B]': {b}, '[C]': {c}}}\n"
            f"methods = {[tuple(m) for m in item.metadata['methods']]}  # (consumed, produced)\n"
            "order = ['[A]', '[B]', '[C]', '{A}', '{B}', '{C}', '(A)', '(B)', '(C)']\n"
            "changed = True\n"
            "while changed:\n"
            "    changed = False\n"
            "    for need, make in methods:\n"
            "        if all(counts.get(k, 0) >= v for k, v in need.items()):\n"
            "            for k, v in need.items():\n"
            "                counts[k] -= v\n"
            "            for k, v in make.items():\n"
            "                counts[k] = counts.get(k, 0) + v\n"
            "            changed = True\n"
            "print('<<<' + ' '.join(str(counts.get(k, 0)) for k in order) + '>>>')\n"
        )


# ---------------------------------------------------------------- String Splitting
SPLIT_METHODS: list[tuple[dict[str, int], dict[str, int]]] = [
    ({"A": 1}, {"X": 2, "Y": 1}),
    ({"B": 2}, {"X": 1}),
    ({"C": 2}, {"Y": 1}),
    ({"B": 1, "C": 1}, {"A": 1}),
    ({"X": 1, "Y": 1}, {"Z": 1}),
]
SPLIT_TEXT = (
    "Method 1: One unit of machine A can be dismantled into two units of part X and one unit of part Y per round.\n"
    "Method 2: Every round, dismantling two machines B results in one part X.\n"
    "Method 3: Two units of machine C can be dismantled into one unit of part Y per round.\n"
    "Method 4: Every round, merging one machine B with one machine C creates one machine A.\n"
    "Method 5: Combining one part X with one part Y produces one part Z each cycle."
)


def run_cycle(state: dict[str, int], methods: list) -> dict[str, int]:
    """Cycle through `methods` one at a time (skipping those that cannot run) until none can run."""
    state = dict(state)

    def can(m: list) -> bool:
        return all(state.get(k, 0) >= v for k, v in m[0].items())

    i = 0
    while any(can(m) for m in methods):
        if can(methods[i]):
            for k, v in methods[i][0].items():
                state[k] -= v
            for k, v in methods[i][1].items():
                state[k] = state.get(k, 0) + v
        i = (i + 1) % len(methods)
    return state


class StringSplitting(SymbenchTask):
    name = "string_splitting"
    description = "Cycle dismantling/merging methods over machine and part counts until none applies."

    def _generate_one(self, rng: random.Random) -> Item:
        return self._item(rng.randint(1, 8), rng.randint(0, 8), rng.randint(0, 8))

    def _item(self, a: int, b: int, c: int, question: str | None = None, answer: str | None = None) -> Item:
        final = run_cycle({"A": a, "B": b, "C": c}, SPLIT_METHODS)
        gold = [str(final.get(k, 0)) for k in "ABCXYZ"]
        question = question or (
            "There is a dismantling engineer who has old machines A, B, and C. He discovered that he can obtain a "
            "batch of new parts X, Y, and Z through the following methods:\n"
            f"{SPLIT_TEXT}\n\n"
            "Xiao Li continuously cycles through these methods in the given order, executing one method at a time. "
            "After Method 5, start again from Method 1. Continue this cycle until no method can be executed. "
            f"Initially, there are {a} units of Machine A, {b} units of Machine B, and {c} units of Machine C. How "
            "many parts X, Y, and Z can Li ultimately obtain, and how many machines A, B, and C will remain?\n\n"
            "Generate the answer in the format <<<a string representing the outcome in the order of machines A, B, "
            "C, parts X, Y, Z>>>. For example, if Machine A has 1 unit, Machine B has 0 units, Machine C has 1 unit, "
            "Part X has 1 unit, Part Y has 1 unit, and Part Z has 1 unit, it should be represented as "
            '["1", "0", "1", "1", "1", "1"].\nYour answer:\n'
        )
        return self.make(question, answer if answer is not None else str(gold).replace("'", '"'), initial=[a, b, c])

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is not None and len(got) == 1 and len(strip_wrappers(answer)) == 6:
            got = [int(ch) for ch in strip_wrappers(answer)]
        if got is None or len(got) != 6:
            return UNPARSEABLE
        return verdict(got == int_tokens(item.answer))

    def reference_solution(self, item: Item) -> str:
        a, b, c = item.metadata["initial"]
        return (
            f"state = {{'A': {a}, 'B': {b}, 'C': {c}, 'X': 0, 'Y': 0, 'Z': 0}}\n"
            f"methods = {SPLIT_METHODS}  # (consumed, produced)\n"
            "can = lambda m: all(state[k] >= v for k, v in m[0].items())\n"
            "i = 0\n"
            "while any(can(m) for m in methods):\n"
            "    if can(methods[i]):\n"
            "        for k, v in methods[i][0].items():\n"
            "            state[k] -= v\n"
            "        for k, v in methods[i][1].items():\n"
            "            state[k] += v\n"
            "    i = (i + 1) % len(methods)\n"
            "print('<<<' + str([str(state[k]) for k in 'ABCXYZ']).replace(\"'\", '\"') + '>>>')\n"
        )


# ---------------------------------------------------------------- Synthesis Decomposition
SYNDECOM_LEVELS = [
    ({"A": (3, 6), "B": (2, 4)},
     [({"A": 1, "B": 1}, {"X": 1}), ({"A": 3}, {"X": 2})], ["A", "B", "X"]),
    ({"A": (4, 8), "B": (3, 6), "C": (2, 5)},
     [({"A": 1, "B": 1, "C": 1}, {"X": 1}), ({"A": 1, "B": 1}, {"C": 2}), ({"C": 2}, {"X": 1})],
     ["A", "B", "C", "X"]),
    ({"A": (5, 8), "B": (2, 4), "C": (4, 7)},
     [({"A": 2, "B": 1, "C": 1}, {"X": 3}), ({"A": 1, "B": 1}, {"C": 2}), ({"C": 2, "X": 1}, {"Y": 1}),
      ({"A": 1, "X": 2}, {"Y": 1})], ["A", "B", "C", "X", "Y"]),
]


def _units(part: dict[str, int], produce: bool) -> str:
    return " and ".join(f"{n} unit{'s' if n > 1 else ''} of {'product' if produce or k in 'XY' else 'crop'} {k}"
                        for k, n in part.items())


def syndecom_question(initial: dict[str, int], methods: list, keys: list[str]) -> str:
    crops = [k for k in keys if k in "ABC"]
    products = [k for k in keys if k in "XY"]
    crops_str = " and ".join(crops) if len(crops) < 3 else "A, B, and C"
    listed = "\n\n".join(f"Method {i + 1}: {_units(n, False)} can be exchanged for {_units(m, True)}, and this can "
                         "be done only once per cycle." for i, (n, m) in enumerate(methods))
    start = ", ".join(f"{v} units of crop {k}" for k, v in initial.items())
    fields = ", ".join(f"remaining_{k}" if k in "ABC" else f"obtained_{k}" for k in keys)
    plural = "s" if len(products) > 1 else ""
    example = ", ".join(str(x) for x in [1, 0, 2, 3, 1][: len(keys)]) if len(keys) > 3 else "1, 0, 3"
    return (
        f"Xiao Li is a farm owner who grows {crops_str}. He can exchange these crops for agricultural product{plural} "
        f"{' and '.join(products)}. He has discovered the following methods to increase the farm's yield:\n\n"
        f"{listed}\n\nXiao Li continuously cycles through these methods in the given order, executing one method at "
        f"a time. After Method {len(methods)}, start again from Method 1. Continue this cycle until no method can be "
        f"executed.\n\nInitially there are {start}.\n\nFirst output the entire reasoning process step by step, "
        "showing each synthesis step's result. Then wrap your final answer in <<<>>> format as a list showing "
        f"[{fields}]. For example, output: <<<[{example}]>>>"
    )


def parse_syndecom(question: str) -> tuple[dict[str, int], list, list[str]] | None:
    """(initial, methods, answer keys) parsed from a Synthesis Decomposition question, else None."""
    methods = []
    for left, right in re.findall(r"Method \d+: (.*?) can be exchanged for (.*?)(?:, and this|\.\s)", question):
        def side(s: str) -> dict[str, int]:
            return {k: int(n) for n, k in re.findall(r"(\d+) units? of (?:crop|product) ([A-Z])", s)}
        methods.append([side(left), side(right)])
    initial = {k: int(n) for n, k in re.findall(r"(\d+) units? of crop ([A-Z])",
                                                  question.split("Initially there are", 1)[-1].split("\n")[0])}
    fields = re.search(r"as a list showing \[([^\]]*)\]", question)
    if not methods or not initial or not fields:
        return None
    keys = [f.strip().split("_")[-1] for f in fields.group(1).split(",")]
    return initial, methods, keys


class SynthesisDecomposition(SymbenchTask):
    name = "synthesis_decomposition"
    description = "Cycle crop-exchange methods until none applies; report remaining crops and products."

    def _generate_one(self, rng: random.Random) -> Item:
        ranges, methods, keys = rng.choice(SYNDECOM_LEVELS)
        initial = {k: rng.randint(lo, hi) for k, (lo, hi) in ranges.items()}
        methods = [[dict(n), dict(m)] for n, m in methods]
        final = run_cycle(initial, methods)
        answer = "[" + ", ".join(str(final.get(k, 0)) for k in keys) + "]"
        return self.make(syndecom_question(initial, methods, keys), answer, initial=initial, methods=methods,
                         keys=keys)

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is None or len(got) != len(item.metadata["keys"]):
            return UNPARSEABLE
        return verdict(got == int_tokens(item.answer))

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            f"state = {md['initial']}\n"
            f"methods = {[tuple(m) for m in md['methods']]}  # (consumed, produced)\n"
            f"keys = {md['keys']}\n"
            "can = lambda m: all(state.get(k, 0) >= v for k, v in m[0].items())\n"
            "i = 0\n"
            "while any(can(m) for m in methods):\n"
            "    if can(methods[i]):\n"
            "        for k, v in methods[i][0].items():\n"
            "            state[k] -= v\n"
            "        for k, v in methods[i][1].items():\n"
            "            state[k] = state.get(k, 0) + v\n"
            "    i = (i + 1) % len(methods)\n"
            "print('<<<[' + ', '.join(str(state.get(k, 0)) for k in keys) + ']>>>')\n"
        )


# ---------------------------------------------------------------- Statistical Counting
def count_score(sequence: str, rules: list[dict]) -> int:
    total = 0
    for ch, grp in itertools.groupby(sequence):
        n = len(list(grp))
        for rule in rules:
            if rule["letter"] == ch and n >= rule.get("min_consecutive", 2):
                total += rule["score"]
    return total


class StatisticalCounting(SymbenchTask):
    name = "statistical_counting"
    description = "Score a letter string by its runs of two or more equal letters."

    def _generate_one(self, rng: random.Random) -> Item:
        k = rng.randint(2, 6)
        letters = string.ascii_uppercase[:k]
        rules = [{"letter": ch, "score": i + 1, "min_consecutive": 2} for i, ch in enumerate(letters)]
        seq = "".join(rng.choice(letters) for _ in range(rng.choice((5, 10, 15, 20, 25, 35, 45, 65))))
        return self.make(self.question(seq, rules), count_score(seq, rules), sequence=seq, rules=rules)

    @staticmethod
    def question(seq: str, rules: list[dict]) -> str:
        letters = [r["letter"] for r in rules]
        listed = "".join(f"{i + 1}. If there are two or more consecutive {r['letter']}'s, add {r['score']} to the "
                         "total score.\n" for i, r in enumerate(rules))
        return (
            f"The initial total score is 0. Given a string consisting of letters {', '.join(letters[:-1])} and "
            f"{letters[-1]}, scan from front to back:\n\n{listed}\nWhat is the total score of the string {seq}?\n"
            "Return your answer with the format <<<number>>>, like <<<5>>> means the total score is 5."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is None or len(got) != 1:
            return UNPARSEABLE
        return verdict(got[0] == int(item.answer))

    def reference_solution(self, item: Item) -> str:
        rules = {r["letter"]: (r["score"], r.get("min_consecutive", 2)) for r in item.metadata["rules"]}
        return (
            "from itertools import groupby\n"
            f"seq = '{item.metadata['sequence']}'\n"
            f"rules = {rules}  # letter: (score, minimum run length)\n"
            "total = 0\n"
            "for ch, run in groupby(seq):\n"
            "    n = len(list(run))\n"
            "    if ch in rules and n >= rules[ch][1]:\n"
            "        total += rules[ch][0]\n"
            "print(f'<<<{total}>>>')\n"
        )


# ---------------------------------------------------------------- Mahjong
def mahjong_result(cards: str, rounds: list[list]) -> int:
    hand = list(cards)
    result = 0
    for add, remove in rounds:
        result = 1 if hand.count(add) >= 2 else 0
        hand.append(add)
        if remove:
            hand.remove(remove)
    return result


class Mahjong(SymbenchTask):
    name = "mahjong"
    description = "Track a hand of letter cards over rounds and decide Peng or Pass in the final round."

    def _generate_one(self, rng: random.Random) -> Item:
        cards = "".join(rng.choice(string.ascii_uppercase[: rng.randint(8, 26)]) for _ in range(13))
        hand, rounds = list(cards), []
        for _ in range(rng.randint(0, 4)):
            add = rng.choice(string.ascii_uppercase)
            hand.append(add)
            remove = rng.choice(hand)
            hand.remove(remove)
            rounds.append([add, remove])
        if rng.random() < 0.5:
            pairs = [c for c in set(hand) if hand.count(c) >= 2]
            last = rng.choice(pairs) if pairs else rng.choice(hand)
        else:
            last = rng.choice(string.ascii_uppercase)
        rounds.append([last, None])
        return self.make(self.question(cards, rounds), mahjong_result(cards, rounds), initial_cards=cards,
                         rounds=rounds)

    @staticmethod
    def question(cards: str, rounds: list[list]) -> str:
        lines = "\n".join(f"Round {i + 1}: Add a {a} card" + (f" and remove a {r} card." if r else "")
                          for i, (a, r) in enumerate(rounds))
        return (
            "There are several letter cards, and the game rules are as follows:1. Initially, there are 13 cards.\n"
            "2. Each time, a new card is added, and a result is determined. Then, one card is removed.\n"
            "3. When there are two identical cards in hand, and the newly added card is the same as these two cards, "
            'the result is determined as "Peng," represented by the number 1.\n'
            '4. If the newly added card does not meet the condition in rule 3, the result is determined as "Pass," '
            "represented by the number 0.\n5. The removed card does not affect the result determination.\n"
            f"Given the initial cards:{cards}\n\n{lines}\n\n"
            "Based on the above information, determine the number judged in the final round.\n"
            "Return your answer with the format <<<x>>>, where x is 0 for Pass, 1 for Peng."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is None or len(got) != 1:
            return UNPARSEABLE
        return verdict(got[0] == int(item.answer))

    def reference_solution(self, item: Item) -> str:
        rounds = [tuple(r) for r in item.metadata["rounds"]]
        return (
            f"hand = list('{item.metadata['initial_cards']}')\n"
            f"rounds = {rounds}  # (added, removed)\n"
            "for add, remove in rounds:\n"
            "    result = 1 if hand.count(add) >= 2 else 0  # Peng needs two identical cards already in hand\n"
            "    hand.append(add)\n"
            "    if remove:\n"
            "        hand.remove(remove)\n"
            "print(f'<<<{result}>>>')\n"
        )


# ---------------------------------------------------------------- Letters
WORDS = """
internationalization characteristically uncharacteristically misunderstanding incomprehensible
responsibilities telecommunications counterproductive disproportionately electroencephalogram
extraterrestrial indistinguishable interdisciplinary multiculturalism overcompensation
photosynthesis pseudoscientific quintessentially straightforwardness transcontinental
unquestionably unsportsmanlike vulnerabilities acknowledgement bureaucratization
compartmentalization conscientiousness deinstitutionalization entrepreneurship hypersensitivity
immunosuppressive inconsequentially irreplaceability magnanimousness neighbourhood
parallelogram possibilities reconnaissance superintendent tintinnabulation bookkeeper
mississippi assassination committee occurrence sassafras abracadabra hippopotamus
onomatopoeia strawberry bananarama cocoonlike parenthesis kaleidoscope zigzagging
""".split()


class Letters(SymbenchTask):
    name = "letters"
    description = "Count a letter in a word and list its 1-based positions."

    def _generate_one(self, rng: random.Random) -> Item:
        if rng.random() < 0.6:
            word = rng.choice(WORDS)
        else:
            word = "".join(rng.choice("abcdefghilmnoprstu") for _ in range(rng.randint(10, 25)))
        letter = rng.choice(word) if rng.random() < 0.9 else rng.choice(string.ascii_lowercase)
        return self.make(self.question(word, letter), self.expected(word, letter), word=word, letter=letter)

    @staticmethod
    def expected(word: str, letter: str) -> str:
        pos = [i + 1 for i, ch in enumerate(word) if ch == letter]
        return f"Count: {len(pos)}, Positions: [{', '.join(map(str, pos))}]"

    @staticmethod
    def question(word: str, letter: str) -> str:
        return (
            f"How many '{letter}'s are in the word '{word}' and what are their positions? The position in the word "
            "counts from 1 not 0.\nSurround the answer with <<<content>>>. Please respond in the format: "
            "<<<Count: X, Positions: [Y, Z, ...]>>>, such as <<<Count: 2, Positions: [1, 3]>>>.\nYour answer:\n"
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return UNPARSEABLE
        m = re.search(r"Count:\s*(-?\d+)\s*,\s*Positions:\s*\[([\d,\s]*)\]", answer, re.IGNORECASE)
        if not m:
            return UNPARSEABLE
        word, letter = item.metadata["word"], item.metadata["letter"]
        pos = [int(x) for x in re.findall(r"\d+", m.group(2))]
        want = [i + 1 for i, ch in enumerate(word) if ch == letter]
        return verdict(int(m.group(1)) == len(want) and sorted(pos) == want)

    def reference_solution(self, item: Item) -> str:
        return (
            f"word = '{item.metadata['word']}'\n"
            f"letter = '{item.metadata['letter']}'\n"
            "positions = [i + 1 for i, ch in enumerate(word) if ch == letter]\n"
            "print(f'<<<Count: {len(positions)}, Positions: {positions}>>>')\n"
        )


# ---------------------------------------------------------------- Cryptanalysis
_DESC = {
    "number": {"pos": "correct and in the correct position", "wrongpos": "correct but in the wrong position",
               "low": "incorrect and too small", "high": "incorrect and too large", "inc": "incorrect"},
    "letter": {"pos": "correct and in the correct position", "wrongpos": "correct but in the wrong position",
               "low": "incorrect and too early in the alphabet", "high": "incorrect and too late in the alphabet",
               "inc": "incorrect"},
}


def crypt_cats(guess: str, pw: str) -> list[str]:
    """Per-element category of a 2-element guess against the password half `pw`."""
    out = []
    for i in range(2):
        if guess[i] == pw[i]:
            out.append("pos")
        elif guess[i] in pw:
            out.append("wrongpos")
        else:
            out.append("low" if guess[i] < pw[i] else "high")
    return out


def crypt_feedback(guess: str, pw: str) -> tuple[list[str], list[str]]:
    """The (numbers, letters) categories as stated to the solver (mixed too-small/too-large become 'inc')."""
    out = []
    for half in (slice(0, 2), slice(2, 4)):
        cats = crypt_cats(guess[half], pw[half])
        if sorted(cats) == ["high", "low"]:
            cats = ["inc", "inc"]
        out.append(cats)
    return out[0], out[1]


def crypt_match(cats: list[str], want: list[str]) -> bool:
    return any(all(w == c or (w == "inc" and c in ("low", "high")) for c, w in zip(p, want, strict=True))
               for p in itertools.permutations(cats))


def crypt_text(kind: str, cats: list[str]) -> str:
    d = _DESC[kind]
    if cats[0] == cats[1]:
        return f"both {kind}s are {d[cats[0]]}"
    return f"one {kind} is {d[cats[0]]}; one {kind} is {d[cats[1]]}"


def parse_crypt_feedback(text: str) -> tuple[list[str], list[str]] | None:
    res: dict[str, list[str]] = {"number": [], "letter": []}
    for clause in re.split(r"[;.]", text):
        m = re.search(r"(both|one) (number|letter)s? (?:is|are) (.*)", clause.strip())
        if not m:
            continue
        desc = m.group(3)
        if "correct position" in desc and "incorrect" not in desc:
            cat = "pos"
        elif "wrong position" in desc:
            cat = "wrongpos"
        elif "too small" in desc or "too early" in desc:
            cat = "low"
        elif "too large" in desc or "too late" in desc:
            cat = "high"
        else:
            cat = "inc"
        res[m.group(2)] += [cat] * (2 if m.group(1) == "both" else 1)
    if len(res["number"]) != 2 or len(res["letter"]) != 2:
        return None
    return res["number"], res["letter"]


def crypt_candidates(guesses: list[list]) -> list[str]:
    digits, letters = string.digits, string.ascii_uppercase
    out = []
    for a in digits:
        for b in digits:
            if a == b:
                continue
            if not all(crypt_match(crypt_cats(g[:2], a + b), n) for g, n, _ in guesses):
                continue
            for c in letters:
                for d in letters:
                    if c != d and all(crypt_match(crypt_cats(g[2:], c + d), L) for g, _, L in guesses):
                        out.append(a + b + c + d)
    return out


class Cryptanalysis(SymbenchTask):
    name = "cryptanalysis"
    description = "Deduce a two-digit, two-letter combination lock code from guess feedback."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            pw = "".join(rng.sample(string.digits, 2)) + "".join(rng.sample(string.ascii_uppercase, 2))
            guesses: list[list] = []
            for _ in range(14):
                nums = rng.sample(string.digits, 2)
                lets = rng.sample(string.ascii_uppercase, 2)
                if rng.random() < 0.5:  # share an element with the password to make it informative
                    k = rng.randrange(2)
                    nums[k] = pw[rng.randrange(2)] if pw[rng.randrange(2)] not in nums else nums[k]
                if rng.random() < 0.5:
                    lets[rng.randrange(2)] = rng.choice(pw[2:]) if rng.choice(pw[2:]) not in lets else lets[0]
                g = "".join(nums) + "".join(lets)
                if len(set(g[:2])) < 2 or len(set(g[2:])) < 2:
                    continue
                n, L = crypt_feedback(g, pw)
                guesses.append([g, n, L])
                if len(guesses) >= 3 and len(crypt_candidates(guesses)) == 1:
                    break
            if crypt_candidates(guesses) == [pw]:
                break
        return self.make(self.question(guesses), str(list(pw)).replace("'", '"'), guesses=guesses)

    @staticmethod
    def question(guesses: list[list]) -> str:
        lines = "\n".join(f"{i + 1}. Guess: {g}, Feedback: {crypt_text('number', n)}; {crypt_text('letter', L)}."
                          for i, (g, n, L) in enumerate(guesses))
        return (
            f"Please deduce the correct password based on the following {len(guesses)} known conditions:\n"
            "A certain combination lock consists of two numbers and two letters, with neither the numbers nor the "
            f"letters repeating.\n{lines}\n"
            'Please provide your answer in the format <<< ["X", "Y", "Z", "W"] >>> where X and Y are the numbers and '
            "Z and W are the letters of the password.\n"
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = tokens(answer)
        if got is not None and len(got) == 1 and len(got[0]) == 4:
            got = list(got[0])
        if got is None or len(got) != 4:
            return UNPARSEABLE
        return verdict([x.upper() for x in got] == tokens(item.answer))

    def reference_solution(self, item: Item) -> str:
        guesses = [tuple(g) for g in item.metadata["guesses"]]
        return (
            "from itertools import permutations\n"
            f"guesses = {guesses}  # (guess, number feedback, letter feedback)\n"
            "def cats(g, pw):  # pos / wrongpos / low / high for each guessed element\n"
            "    return ['pos' if g[i] == pw[i] else 'wrongpos' if g[i] in pw else 'low' if g[i] < pw[i] else 'high'\n"
            "            for i in range(2)]\n"
            "def match(cs, want):  # 'inc' = incorrect, too small or too large\n"
            "    return any(all(w == c or (w == 'inc' and c in ('low', 'high')) for c, w in zip(p, want))\n"
            "               for p in permutations(cs))\n"
            "digits, letters = '0123456789', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'\n"
            "nums = [a + b for a in digits for b in digits if a != b\n"
            "        if all(match(cats(g[:2], a + b), n) for g, n, _ in guesses)]\n"
            "lets = [c + d for c in letters for d in letters if c != d\n"
            "        if all(match(cats(g[2:], c + d), l) for g, _, l in guesses)]\n"
            "pw = nums[0] + lets[0]\n"
            "print('<<<' + str(list(pw)).replace(\"'\", '\"') + '>>>')\n"
        )
