"""One-line explanations of errors: what went wrong and what to do about it.

`explain(err)` is what the `r1ci` CLI prints after ``r1ci: error:``; `root_cause(text)` finds the error
behind a failed ``dagster asset materialize`` in its output.
"""

from __future__ import annotations

import errno
import re

# fixes for operating-system errors a user can act on, by errno
_OS_FIXES = {
    errno.ENOSPC: "free some space or point R1CI_DATA_DIR at a bigger disk",
    errno.EDQUOT: "free some space or point R1CI_DATA_DIR at a bigger disk",
    errno.EROFS: "point R1CI_DATA_DIR at a writable folder (or remount it read-write)",
    errno.EACCES: "fix the folder's permissions or point R1CI_DATA_DIR at a folder you can write",
    errno.EPERM: "fix the folder's permissions or point R1CI_DATA_DIR at a folder you can write",
    errno.ENOMEM: "lower the batch sizes in the recipe or free memory",
}
_TEXT_FIXES = [
    ("No space left on device", errno.ENOSPC),
    ("Read-only file system", errno.EROFS),
    ("Permission denied", errno.EACCES),
    ("Cannot allocate memory", errno.ENOMEM),
]


class PipelineError(RuntimeError):
    """A materialisation failed; the message is its root cause in one line."""


def first_line(text: str, limit: int = 600) -> str:
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def with_fix(message: str) -> str:
    """`message` plus the fix for an OS-level cause it names (disk full, read-only, permissions)."""
    for needle, code in _TEXT_FIXES:
        if needle in message and _OS_FIXES[code] not in message:
            return f"{message} ({_OS_FIXES[code]})"
    return message


def explain(err: BaseException) -> str:
    """One line for `err`: its message (first line), with the fix for OS errors."""
    if isinstance(err, OSError) and err.errno in _OS_FIXES and err.strerror:
        where = err.filename or ""
        msg = f"{err.strerror.lower()}" + (f" writing {where}" if where else "")
        return f"{msg} ({_OS_FIXES[err.errno]})"
    text = first_line(str(err)) or type(err).__name__
    return with_fix(text)


_EXC_LINE = re.compile(r"^(?P<cls>[A-Za-z_][\w.]*?(?:Error|Exception|Exit|Interrupt|Failure|Unavailable))"
                       r"(?::\s*(?P<msg>.*))?$")
_STEP_FAILURE = re.compile(r" - (?P<step>[\w.\[\]-]+) - STEP_FAILURE - ")
# Any event of a step (when the disk is full, the failure event itself may never be logged)
_STEP_EVENT = re.compile(r" - (?P<step>[\w.\[\]-]+) - (?:STEP|RESOURCE_INIT)_[A-Z_]+ - ")
_DAGSTER_WRAPPERS = ("dagster._core.errors.DagsterExecutionStepExecutionError",
                     "dagster._core.errors.DagsterExecutionInterruptedError", "DagsterExecutionStepExecutionError")
_CRASHED = re.compile(r"(child process for step (?P<step>\S+) unexpectedly exited with code (?P<code>-?\d+))")


def root_cause(output: str) -> str | None:
    """The root-cause line of a failed Dagster materialisation, from its log output, or None.

    The last exception line that is not Dagster's own wrapper, prefixed with the failed step; a step whose
    process died (killed, out of memory) is reported as such.
    """
    lines = output.splitlines()
    step = last_step = None
    for line in lines:
        m = _STEP_FAILURE.search(line)
        if m:
            step = m.group("step")
        m = _STEP_EVENT.search(line)
        if m:
            last_step = m.group("step")
    step = step or last_step
    cause = None
    for line in lines:
        m = _EXC_LINE.match(line.strip())
        if m and m.group("cls") not in _DAGSTER_WRAPPERS and m.group("msg"):
            cause = (m.group("cls").rsplit(".", 1)[-1], m.group("msg").strip())
    crashed = _CRASHED.search(output)
    if cause is None and crashed:
        code = int(crashed.group("code"))
        why = "it was killed (out of memory?)" if code in (-9, 137) else f"exit code {code}"
        return (f"{crashed.group('step')}: the step's process died ({why}): re-run the same command to resume; "
                "lower the recipe's batch sizes if memory ran out")
    if cause is None:
        return None
    cls, msg = cause
    if cls.startswith("Dagster"):  # Dagster's own error (bad selection, bad config): its message says it
        msg = re.sub(r"\s*Make sure all keys are spelled correctly.*", "", msg)
        if "were selected, but no AssetsDefinition" in msg:
            msg = msg.split(" were selected")[0] + " are not assets of r1ci: choose from task_corpus, base_model, " \
                  "teacher_trajectories, sft_dataset, sft_checkpoint, grpo_checkpoint, eval_report (or '*')"
        return first_line(msg)
    line = with_fix(first_line(re.sub(r"^\[Errno \d+\]\s*", "", msg)))
    if cls in ("OSError", "FileNotFoundError", "PermissionError") and not any(k in line for k in ("(", ":")):
        line = f"{cls}: {line}"
    return f"{step}: {line}" if step else line
