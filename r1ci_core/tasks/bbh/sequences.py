"""BBH dyck_languages (close the open brackets) and word_sorting (sort a list of words)."""

from __future__ import annotations

import random
from typing import Any

from ..base import Item
from .common import BBHTask, norm

_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}

WORDS = """
abbot acrobat admiral albeit alcove almanac amber anchor anthem apricot arcade archive argon armada
ascot atlas auburn avenue azure badge ballad bamboo banister baron basil beacon bedrock beehive bellow
benign biscuit blizzard bonfire boulder bracket breeze brigade brisket bronze buffalo bugle bureau
burrow cabaret cactus caliber camphor canopy canyon caravan carbon cardinal cascade castle catalog
cedar cellar census chalice channel chapel charcoal chestnut chimney chorus cinder citadel clover
cobalt cockpit comet compass condor copper coral cordial corridor cosmic cottage coyote crater
crescent crimson crystal cucumber cymbal dagger daisy dazzle debris decibel delta denim dervish
diagram dialect diesel dolphin domain dragon drizzle dungeon dynamo eagle easel ebony eclipse
elbow ember emerald emperor engine epoch equator ermine estuary falcon fathom feather fender ferry
fiddle figment filament fjord flannel flotilla fossil foundry fresco galaxy gallon garnet gazebo
geyser ginger glacier gondola granite gravel griffin grotto guitar gypsum hammock harbor harvest
hazel helmet heron hickory horizon hornet hurdle iceberg igloo indigo inkwell iris island ivory
jackal jasmine javelin jigsaw journal jubilee juniper kayak kernel kettle kiosk kitten knapsack
labyrinth lagoon lantern larch lattice lavender ledger lemon lilac limestone linen lobster locket
lumber lyric magnet mahogany mallet mammoth mandolin mango maple marble marina marrow meadow
meteor mingle mirage mitten molasses monsoon mosaic muffin musket mustard napkin nectar nickel
nimbus nomad nugget oasis oblong obsidian octave olive onyx opal orbit orchard orchid ostrich otter
oyster paddle pagoda palette panther papyrus parcel parsley pebble pelican pendant pepper pewter
pheasant pilgrim pinnacle piston plank plaza plume pocket pollen poplar porcelain prairie prism
pumpkin puzzle pyramid quarry quartz quill quiver rabbit radish raffle rampart raven reef relic
ribbon riddle rocket rooster saddle saffron salmon sandal satchel scarlet scepter schooner sequoia
shadow shrapnel sickle silo skeleton sleigh slipper sonnet sparrow sphinx spindle spruce squirrel
stallion stencil summit sundial swallow sycamore syndrome tabard talisman tambourine tangerine tapestry
tavern teapot tempest thimble thistle thunder timber topaz tornado trellis trident trombone trophy
tulip tundra turquoise tusk umber umbrella valley velvet venom verdict vessel viaduct violet vortex
wafer walnut walrus warden wasp wharf whisker widget willow windmill wizard wombat yacht yarrow
yeoman yodel zealot zenith zephyr zigzag zinnia zodiac
""".split()


class DyckLanguages(BBHTask):
    task = "dyck_languages"
    description = "Complete a bracket sequence so every parenthesis is closed properly."

    def _generate_one(self, rng: random.Random) -> Item:
        tokens: list[str] = []
        stack: list[str] = []
        target_len = rng.randint(4, 30)
        while len(tokens) < target_len or not stack:
            if stack and rng.random() < 0.45:
                tokens.append(_PAIRS[stack.pop()])
            else:
                opener = rng.choice(list(_PAIRS))
                tokens.append(opener)
                stack.append(opener)
        closing = " ".join(_PAIRS[b] for b in reversed(stack))
        seq = " ".join(tokens)
        text = ("Complete the rest of the sequence, making sure that the parentheses are closed properly. "
                f"Input: {seq}")
        return self.item(text, closing, {"sequence": seq})

    def normalise_text(self, text: str) -> str:
        return "".join(norm(text).split())

    def parse(self, question: str) -> dict[str, Any]:
        return {"sequence": question.split("Input:", 1)[1].strip()}

    def program(self, values: dict[str, Any]) -> str:
        return (
            f"sequence = {values['sequence']!r}\n"
            "pairs = {'(': ')', '[': ']', '{': '}', '<': '>'}\n"
            "stack = []\n"
            "for tok in sequence.split():\n"
            "    if tok in pairs:\n"
            "        stack.append(tok)\n"
            "    else:\n"
            "        stack.pop()\n"
            "print('<<<' + ' '.join(pairs[t] for t in reversed(stack)) + '>>>')\n"
        )


class WordSorting(BBHTask):
    task = "word_sorting"
    description = "Sort a list of words alphabetically."

    def _generate_one(self, rng: random.Random) -> Item:
        words = rng.sample(WORDS, rng.randint(3, 18))
        text = f"Sort the following words alphabetically: List: {' '.join(words)}"
        return self.item(text, " ".join(sorted(words)), {"words": words})

    def normalise_text(self, text: str) -> str:
        return " ".join(norm(text).replace(",", " ").split())

    def parse(self, question: str) -> dict[str, Any]:
        return {"words": question.split("List:", 1)[1].split()}

    def program(self, values: dict[str, Any]) -> str:
        return f"words = {values['words']!r}\nprint('<<<' + ' '.join(sorted(words)) + '>>>')\n"
