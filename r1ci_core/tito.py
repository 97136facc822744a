"""Token-in-token-out checks: GRPO trains on exactly the ids the policy sampled.

The rollout engine never re-tokenises text between turns: a trajectory's ids are the prompt's, then each
turn's sampled ids as the backend returned them, with only the template text and interpreter output between
turns tokenised (prefix deltas). Two cheap per-trajectory checks (`grpo.tito_check`, on by default) count
where that could break, as logged metrics:

* `tito/retokenize_mismatches`: the conversation re-rendered by the chat template and tokenised in one go
  differs from the ids the policy sampled in (a template that is not prefix-stable in tokens, or a sampled
  tokenisation that text would not give back). A pipeline that re-tokenises text would train on other ids
  there; r1ci does not, but the count says how far its training contexts are from the template's rendering
  (the one SFT and evaluation see). verl's `tokenization_sanity_check_mode` makes the same comparison.
* `tito/trainer_mismatches`: the prompt and completion ids in TRL's scored batch differ from the engine's
  (anything between the engine and the loss that drops, truncates or rewrites ids).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def retokenize_mismatch(traj: Any, tokenizer: Any) -> int | None:
    """The first position where the trajectory's ids differ from its conversation rendered and tokenised in one
    go (None when they agree, or when the trajectory has no ids)."""
    if not traj.token_ids:
        return None
    out = tokenizer.apply_chat_template(traj.messages, tokenize=True, add_generation_prompt=False, return_dict=True)
    return first_difference(list(traj.token_ids), list(out["input_ids"]))


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The first index where `a` and `b` differ (the shorter length when one extends the other; None if equal)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def retokenize_mismatches(trajs: Sequence[Any], tokenizer: Any) -> int:
    """How many trajectories `retokenize_mismatch` flags; the first one is described in a warning."""
    bad = [(t, pos) for t in trajs if (pos := retokenize_mismatch(t, tokenizer)) is not None]
    if bad:
        traj, pos = bad[0]
        around = tokenizer.decode(traj.token_ids[max(0, pos - 8): pos + 8], skip_special_tokens=False)
        log.warning("token-in-token-out: %d of %d trajectories differ from their re-tokenised conversation "
                    "(first: %s at token %d of %d, near %r; where=%s); training uses the sampled ids",
                    len(bad), len(trajs), traj.item_id, pos, len(traj.token_ids), around,
                    "policy" if pos < len(traj.mask) and traj.mask[pos] else "template")
    return len(bad)


def trainer_mismatches(batch: dict[str, Any], expected: Sequence[tuple[list[int], list[int], list[int]]]) -> int:
    """Rows of TRL's scored `batch` whose prompt ids, completion ids or policy-token mask differ from
    `expected` (per trajectory: prompt ids, completion ids, mask, as the rollout function returned them)."""
    bad = 0
    prompt_mask, completion_mask = batch["prompt_mask"].bool(), batch["completion_mask"]
    tool_mask = batch.get("tool_mask")
    for row, (prompt, completion, mask) in enumerate(expected):
        n = len(completion)  # TRL pads on the right (and may zero a truncated row's mask: not a change of ids)
        got_prompt = batch["prompt_ids"][row][prompt_mask[row]].tolist()
        got_completion = batch["completion_ids"][row][:n].tolist()
        got_mask = tool_mask[row][:n].tolist() if tool_mask is not None else [1] * n
        bad += int(got_prompt != list(prompt) or got_completion != list(completion) or got_mask != list(mask)
                   or bool(completion_mask[row][n:].any()))
    if bad:
        log.warning("token-in-token-out: %d of %d rows of TRL's batch differ from the ids the engine sampled",
                    bad, len(expected))
    return bad
