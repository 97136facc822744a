"""Run as a subprocess by the resume tests, then SIGKILLed mid-way.

`shards OUT N SHARD DELAY`: `run_sharded` over N numbered inputs with a slowed-down fn (a few rows per input,
none for every 7th).
`teacher DATA_DIR CORPUS_JSON DELAY`: the real `teacher_trajectories` stage, each shard slowed by DELAY seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def rows_for(x: dict) -> list[dict]:
    if x["n"] % 7 == 3:
        return []  # an input may give no row: it is still finished
    return [{"key": x["id"], "n": x["n"], "sample": s, "text": f"answer {x['n'] * 10 + s}"} for s in range(2)]


def shards_main(out: str, n: int, shard: int, delay: float) -> None:
    from r1ci_core.shards import run_sharded

    inputs = [{"id": f"q{i:03d}", "n": i} for i in range(n)]

    def fn(chunk):
        time.sleep(delay)
        return [r for x in chunk for r in rows_for(x)], {"inputs": len(chunk)}

    run = run_sharded(inputs, Path(out), fn, shard_size=shard, fingerprint="fp-1", desc="slow", progress=False)
    print(json.dumps({"resumed": run.n_resumed, "generated": run.n_generated, "stats": run.stats}))


def teacher_main(data_dir: str, corpus_json: str, delay: float) -> None:
    from teacher_helpers import small_recipe

    from r1ci_core import teachers
    from r1ci_core.sandbox import Sandbox
    from r1ci_core.stages import StageContext, StageResult, teacher_trajectories

    original = teachers.ReferenceTeacher.generate

    def slow(self, chunk):
        time.sleep(delay)
        return original(self, chunk)

    teachers.ReferenceTeacher.generate = slow
    corpus = StageResult(**json.loads(corpus_json))
    ctx = StageContext(recipe=small_recipe(**{"teacher.shard_size": 4}), root=Path(data_dir))
    with Sandbox() as sb:
        res = teacher_trajectories(ctx, corpus, sb)
    print(json.dumps(res.metadata, default=str))


if __name__ == "__main__":
    if sys.argv[1] == "shards":
        shards_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        teacher_main(sys.argv[2], sys.argv[3], float(sys.argv[4]))
