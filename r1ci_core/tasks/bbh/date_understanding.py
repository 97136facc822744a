"""BBH date_understanding: date arithmetic from a short story, answered as a MM/DD/YYYY option."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from ..base import Item
from .common import BBHTask, letter_of, render_options

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# question phrase -> (kind, amount) applied to today
QUERIES = {
    "today": ("days", 0), "tomorrow": ("days", 1), "yesterday": ("days", -1),
    "one week from today": ("days", 7), "one week ago from today": ("days", -7),
    "10 days ago": ("days", -10), "24 hours later": ("days", 1), "a month ago": ("months", -1),
    "one year ago from today": ("years", -1),
}


def _fmt(d: dt.date) -> str:
    return d.strftime("%m/%d/%Y")


def _long(d: dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def _shift(d: dt.date, kind: str, amount: int) -> dt.date:
    if kind == "days":
        return d + dt.timedelta(days=amount)
    if kind == "months":
        y, m = divmod(d.year * 12 + d.month - 1 + amount, 12)
        return d.replace(year=y, month=m + 1)
    return d.replace(year=d.year + amount)


class DateUnderstanding(BBHTask):
    task = "date_understanding"
    description = "Infer a date from a short story and shift it by days, months or years."
    answer_kind = "choice"

    def _generate_one(self, rng: random.Random) -> Item:
        today = dt.date(rng.randint(1900, 2030), rng.randint(1, 12), rng.randint(1, 28))
        story = rng.randrange(7)
        if story == 0:
            text, anchor, offset = f"Today is {_long(today)}.", today, 0
        elif story == 1:
            anchor, offset = today - dt.timedelta(days=1), 1
            text = f"Yesterday was {_long(anchor)}."
        elif story == 2:
            anchor, offset = today + dt.timedelta(days=1), -1
            text = f"Tomorrow is {_fmt(anchor)}."
        elif story == 3:
            anchor, offset = today - dt.timedelta(days=2), 2
            text = f"The day before yesterday was {_fmt(anchor)}."
        elif story == 4:
            days = rng.randint(20, 400)
            anchor, offset = today - dt.timedelta(days=days), days
            text = f"Jane quit her job on {_long(anchor)}. {days} days have passed since then."
        elif story == 5:
            text, anchor, offset = f"It is {today.month}/{today.day}/{today.year} today.", today, 0
        else:
            anchor, offset = today + dt.timedelta(days=2), -2
            text = f"The deadline is {_long(anchor)}, which is 2 days away from now."
        phrase = rng.choice(list(QUERIES))
        kind, amount = QUERIES[phrase]
        answer = _shift(today, kind, amount)
        distract = {_fmt(answer)}
        while len(distract) < 6:
            kind_d, amounts = rng.choice([("days", [-7, -2, -1, 1, 2, 7, 10, 30]), ("months", [-2, -1, 1, 2]),
                                          ("years", [-40, -1, 1, 30, 60])])
            try:
                distract.add(_fmt(_shift(answer, kind_d, rng.choice(amounts))))
            except ValueError:  # e.g. Feb 30
                continue
        options = sorted(distract - {_fmt(answer)})
        options.insert(rng.randrange(6), _fmt(answer))
        question = f"{text} What is the date {phrase} in MM/DD/YYYY?\n{render_options(options)}"
        values = {"anchor": [anchor.year, anchor.month, anchor.day], "days_to_today": offset,
                  "shift": [kind, amount], "options": options}
        return self.item(question, letter_of(options, _fmt(answer)), values)

    def program(self, values: dict[str, Any]) -> str:
        y, m, d = values["anchor"]
        kind, amount = values["shift"]
        return (
            "from datetime import date, timedelta\n"
            f"anchor = date({y}, {m}, {d})  # the date the story states\n"
            f"today = anchor + timedelta(days={values['days_to_today']})\n"
            f"kind, amount = {kind!r}, {amount}\n"
            f"options = {values['options']!r}\n"
            "if kind == 'days':\n"
            "    target = today + timedelta(days=amount)\n"
            "elif kind == 'months':\n"
            "    y, m = divmod(today.year * 12 + today.month - 1 + amount, 12)\n"
            "    target = today.replace(year=y, month=m + 1)\n"
            "else:\n"
            "    target = today.replace(year=today.year + amount)\n"
            "answer = target.strftime('%m/%d/%Y')\n"
            "print(f'<<<({chr(65 + options.index(answer))})>>>')\n"
        )
