"""BBH hyperbaton: pick the sentence whose adjectives follow English order
(opinion, size, age, shape, color, origin, material, purpose)."""

from __future__ import annotations

import random
from typing import Any

from ..base import Item
from .common import BBHTask, NoReferenceSolution, letter_of, parse_options, render_options

ORDER = ["opinion", "size", "age", "shape", "color", "origin", "material", "purpose"]
ADJECTIVES = {
    "opinion": "good lovely terrible obnoxious wonderful silly nice repulsive ridiculous awful mysterious "
               "adorable enormous-looking fantastic",
    "size": "big small little large huge tiny enormous massive midsize normal-size",
    "age": "old new ancient archaic brand-new old-fashioned",
    "shape": "square circular triangular rectangular spherical prismlike pyramidal",
    "color": "red blue green yellow white black gray brown pink purple tan",
    "origin": "American Chinese Japanese German Mexican Russian Indian Brazilian Egyptian Filipino "
              "Turkish Vietnamese Nigerian Congolese Thai Ethiopian Iranian Pakistani Bangladeshi",
    "material": "wool plastic glass paper cardboard rubber steel leather iron wood cloth lead fiberglass",
    "purpose": "smoking hiking drinking eating walking snorkeling exercise whittling",
}
CATEGORY = {w.lower(): cat for cat, words in ADJECTIVES.items() for w in words.split()}
NOUNS = "ship knife shoe sweater car surfboard baby dog cat house chair table bag match watch box".split()


class Hyperbaton(BBHTask):
    task = "hyperbaton"
    description = "Choose the sentence with the correct English adjective order."
    answer_kind = "choice"

    def _generate_one(self, rng: random.Random) -> Item:
        cats = sorted(rng.sample(ORDER, rng.randint(2, 5)), key=ORDER.index)
        adjs = [rng.choice(ADJECTIVES[c].split()) for c in cats]
        noun = rng.choice(NOUNS)
        wrong = adjs[:]
        while wrong == adjs:
            rng.shuffle(wrong)
        right_s, wrong_s = " ".join(adjs + [noun]), " ".join(wrong + [noun])
        options = [right_s, wrong_s] if rng.random() < 0.5 else [wrong_s, right_s]
        text = f"Which sentence has the correct adjective order:\n{render_options(options)}"
        lexicon = {a.lower(): CATEGORY[a.lower()] for a in adjs}
        return self.item(text, letter_of(options, right_s), {"options": options, "lexicon": lexicon})

    def parse(self, question: str) -> dict[str, Any]:
        options = [t for _, t in parse_options(question)]
        lexicon = {}
        for opt in options:
            for w in opt.split()[:-1]:
                if w.lower() not in CATEGORY:
                    raise NoReferenceSolution(f"adjective {w!r} not in the lexicon")
                lexicon[w.lower()] = CATEGORY[w.lower()]
        return {"options": options, "lexicon": lexicon}

    def program(self, values: dict[str, Any]) -> str:
        return (
            f"order = {ORDER!r}\n"
            f"category = {values['lexicon']!r}\n"
            f"options = {values['options']!r}\n"
            "for i, sentence in enumerate(options):\n"
            "    ranks = [order.index(category[w.lower()]) for w in sentence.split()[:-1]]\n"
            "    if ranks == sorted(ranks):\n"
            "        print(f'<<<({chr(65 + i)})>>>')\n"
            "        break\n"
        )
