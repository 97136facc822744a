# ruff: noqa: UP031
"""Inside the sandbox: the role to play (``sys.argv[1]``) and its settings (``sys.argv[2]``, JSON)."""

import json
import sys

from .cold import cold_main, plain_main
from .session import session_main
from .warm import hub_main

if __name__ == "__main__":
    _role, _cfg = sys.argv[1], json.loads(sys.argv[2])
    sys.path[0:0] = _cfg.get("sys_path", [])
    {"hub": hub_main, "cold": cold_main, "plain": plain_main, "session": session_main}[_role](_cfg)
