"""Result of one sandboxed execution."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExecResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False
    infra_error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the sandbox worked and the program exited with 0 within its limits."""
        return self.infra_error is None and not self.timed_out and self.exit_code == 0
