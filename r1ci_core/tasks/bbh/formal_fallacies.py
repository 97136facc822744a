"""BBH formal_fallacies: is an argument of quantified statements about people deductively valid?

Statements are monadic: ["all", antecedent (conjunction of literals), consequent (disjunction)],
["some", conjunction] or ["is", individual, disjunction]; a literal is [predicate, positive]. The
verifier and the reference program decide validity by enumerating every model over predicate types.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from ..base import Item
from .common import BBHTask

RELATIONS = [("schoolmate", "a"), ("stepsister", "a"), ("cousin", "a"), ("close friend", "a"),
             ("ex-fan", "an"), ("admirer", "an"), ("half-brother", "a"), ("classmate", "a"),
             ("ancestor", "an"), ("workmate", "a"), ("great-grandfather", "a"), ("nephew", "a")]
TARGETS = ["Sondra", "Pricilla", "Lena", "Kenneth", "Jeffery", "Gene", "Dolores", "Tasha", "FC Porto",
           "Atalanta BC", "Real Madrid CF", "Leroy", "Ashley", "Carol", "Francis"]
INDIVIDUALS = ["Jonathan", "Fred", "Rosa", "Eleanor", "Santiago", "Tracy", "Oliver", "Beatriz"]
INTROS = [
    ("Here comes a perfectly valid argument: ", ["First, ", "Second, ", "Third, "], "Therefore, "),
    ("It is not always easy to see who is related to whom -- and in which ways. The following argument "
     "pertains to this question: ", ["To begin with, ", "Moreover, ", "Finally, "], "So, necessarily, "),
    ("Is Titanium oxide an ingredient of my washing power? Which chemicals does my perfume contain? It is really "
     "difficult to keep track of all chemicals one is regularly exposed to. The following argument seeks to "
     "clarify some such relations: ", ["To start with, ", "Next, ", "Plus, "], "Consequently, "),
]


def holds(stmt: list[Any], inhabited: list[dict[str, bool]], individuals: dict[str, dict[str, bool]]) -> bool:
    def sat(t: dict[str, bool], lit: list[Any]) -> bool:
        return t[lit[0]] == lit[1]

    if stmt[0] == "all":
        return all(not all(sat(t, lit) for lit in stmt[1]) or any(sat(t, lit) for lit in stmt[2])
                   for t in inhabited)
    if stmt[0] == "some":
        return any(all(sat(t, lit) for lit in stmt[1]) for t in inhabited)
    return any(sat(individuals[stmt[1]], lit) for lit in stmt[2])


def _literals(stmt: list[Any]) -> list[list[Any]]:
    return stmt[2] if stmt[0] == "is" else stmt[1] + (stmt[2] if stmt[0] == "all" else [])


def is_valid(premises: list[list[Any]], conclusion: list[Any]) -> bool:
    stmts = premises + [conclusion]
    preds = sorted({lit[0] for s in stmts for lit in _literals(s)})
    names = sorted({s[1] for s in stmts if s[0] == "is"})
    types = [dict(zip(preds, bits, strict=True)) for bits in itertools.product([False, True], repeat=len(preds))]
    for mask in range(1, 2 ** len(types)):
        inhabited = [t for i, t in enumerate(types) if mask >> i & 1]
        for assignment in itertools.product(inhabited, repeat=len(names)):
            ind = dict(zip(names, assignment, strict=True))
            if all(holds(p, inhabited, ind) for p in premises) and not holds(conclusion, inhabited, ind):
                return False
    return True


class FormalFallacies(BBHTask):
    task = "formal_fallacies"
    description = "Decide whether an argument about people's relations is deductively valid."
    answer_kind = "label"
    labels = ("valid", "invalid")

    def _generate_one(self, rng: random.Random) -> Item:
        want_valid = rng.random() < 0.5
        rels = rng.sample(RELATIONS, 3)
        tgts = rng.sample(TARGETS, 3)
        phrases = {p: (art, f"{rel} of {t}") for p, (rel, art), t in zip("ABC", rels, tgts, strict=True)}
        person = rng.choice(INDIVIDUALS)
        for _ in range(500):
            premises, conclusion = self._random_argument(rng, person)
            if is_valid(premises, conclusion) == want_valid and conclusion not in premises:
                break
        intro, ords, therefore = rng.choice(INTROS)
        sentences = [o + self._render(rng, p, phrases) + "." for o, p in zip(ords, premises, strict=False)]
        concl = self._render(rng, conclusion, phrases)
        text = (f'"{intro}{" ".join(sentences)} {therefore}{concl}."\n'
                "Is the argument, as presented, deductively valid or invalid?\nOptions:\n- valid\n- invalid")
        answer = "valid" if is_valid(premises, conclusion) else "invalid"
        return self.item(text, answer, {"premises": premises, "conclusion": conclusion})

    @staticmethod
    def _random_argument(rng: random.Random, person: str) -> tuple[list[list[Any]], list[Any]]:
        a, b, c = "ABC"

        def lit(p: str) -> list[Any]:
            return [p, rng.random() < 0.7]

        def universal(p: str, q: str) -> list[Any]:
            return ["all", [lit(p)], [lit(q)]]

        shape = rng.randrange(4)
        if shape == 0:  # chain: A->B, B->C  |-  A->C (or variants)
            premises = [universal(a, b), universal(b, c)]
            conclusion = rng.choice([universal(a, c), universal(c, a), ["all", [lit(c)], [lit(a)]]])
        elif shape == 1:  # individual
            premises = [["is", person, [lit(a)]], universal(a, b)]
            conclusion = ["is", person, [lit(rng.choice([a, b]))]]
        elif shape == 2:  # disjunction
            premises = [["all", [lit(a)], [lit(b), lit(c)]], universal(b, c)]
            conclusion = rng.choice([universal(a, c), universal(c, a), ["all", [lit(a)], [lit(b)]]])
        else:  # existential
            premises = [["some", [lit(a), lit(b)]], universal(b, c)]
            conclusion = rng.choice([["some", [lit(a), lit(c)]], ["some", [lit(c), lit(b)]], universal(a, c)])
        return premises, conclusion

    @staticmethod
    def _render(rng: random.Random, stmt: list[Any], phrases: dict[str, tuple[str, str]]) -> str:
        def bare(p: str) -> str:
            return phrases[p][1]

        def art(lt: list[Any]) -> str:
            art_, noun = phrases[lt[0]]
            return f"{'' if lt[1] else 'not '}{art_} {noun}"

        if stmt[0] == "is":
            return f"{stmt[1]} is " + " or ".join(art(lt) for lt in stmt[2])
        if stmt[0] == "some":
            return "there is somebody who is " + " and ".join(art(lt) for lt in stmt[1])
        ant, cons = stmt[1], stmt[2]
        if len(ant) == 1 and len(cons) == 1 and ant[0][1] and cons[0][1]:
            return rng.choice([f"every {bare(ant[0][0])} is {art(cons[0])}",
                               f"being {art(cons[0])} is necessary for being {art(ant[0])}",
                               f"being {art(ant[0])} is sufficient for being {art(cons[0])}"])
        if len(ant) == 1 and ant[0][1] and len(cons) == 1 and not cons[0][1]:
            return f"no {bare(ant[0][0])} is {art([cons[0][0], True])}"
        return "whoever is " + " and ".join(art(lt) for lt in ant) + " is " + " or ".join(art(lt) for lt in cons)

    def program(self, values: dict[str, Any]) -> str:
        return (
            "import itertools\n"
            f"premises = {values['premises']!r}\n"
            f"conclusion = {values['conclusion']!r}\n"
            "# ['all', antecedent literals (and), consequent literals (or)] | ['some', literals (and)]\n"
            "# | ['is', person, literals (or)];  literal = [predicate, positive]\n"
            "def sat(t, lit):\n"
            "    return t[lit[0]] == lit[1]\n"
            "def holds(s, inhabited, who):\n"
            "    if s[0] == 'all':\n"
            "        return all(not all(sat(t, l) for l in s[1]) or any(sat(t, l) for l in s[2]) for t in inhabited)\n"
            "    if s[0] == 'some':\n"
            "        return any(all(sat(t, l) for l in s[1]) for t in inhabited)\n"
            "    return any(sat(who[s[1]], l) for l in s[2])\n"
            "stmts = premises + [conclusion]\n"
            "preds = sorted({l[0] for s in stmts for l in (s[2] if s[0] == 'is' else s[1] + (s[2] if s[0] == 'all' else []))})\n"
            "names = sorted({s[1] for s in stmts if s[0] == 'is'})\n"
            "types = [dict(zip(preds, bits)) for bits in itertools.product([False, True], repeat=len(preds))]\n"
            "valid = True\n"
            "for mask in range(1, 2 ** len(types)):\n"
            "    inhabited = [t for i, t in enumerate(types) if mask >> i & 1]\n"
            "    for assignment in itertools.product(inhabited, repeat=len(names)):\n"
            "        who = dict(zip(names, assignment))\n"
            "        if all(holds(p, inhabited, who) for p in premises) and not holds(conclusion, inhabited, who):\n"
            "            valid = False\n"
            "print('<<<' + ('valid' if valid else 'invalid') + '>>>')\n"
        )
