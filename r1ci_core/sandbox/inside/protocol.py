"""What the host and the code inside the sandbox say to each other: struct layouts, exit codes, tags.

Standard library only: imported by the host modules, and the first part of the source that runs inside
(see :func:`r1ci_core.sandbox.inside.source`).
"""

import struct

# --- struct layouts
# A request (host -> executor, its code pipe): limits (0: none) mem (bytes on top of the interpreter),
# cpu s, processes, file size bytes, open files; then stdin length and code length, then stdin and code (UTF-8).
REQUEST = struct.Struct("<5qII")
LIMIT_NAMES = ("mem", "cpu", "nproc", "fsize", "nofile")
# The status pipe (supervisor -> host): b"ST", wait status, user+sys cpu in us, max rss kB (warm: -1, -1);
# or b"ER" and a message when the supervisor itself failed.
STATUS = struct.Struct("<2siqq")
STATUS_TAG, STATUS_ERROR_TAG = b"ST", b"ER"
DONE = struct.Struct("<4si")  # executor -> slot: b"DONE", exit code
DONE_FD = 1000  # the executor's end of its done pipe (far from the low numbers a program's own files get)
SLOT_MSG = struct.Struct("<IB")  # hub -> host with a new slot's socket: slot number, kind
TEMPLATE_SLOT_MSG = struct.Struct("<iB")  # template -> hub with a new slot's socket: its pid, kind
ZMSG = struct.Struct("<ci")  # Z -> slot: b"P" and the executor's pid once forked, b"X" and its wait status once reaped
SESSION_MSG = struct.Struct("<cii")  # holder/call -> session supervisor: tag, exit code, pid

# --- executor kinds (templates): the standard library preloaded, or the `preload` packages too
LITE, SCI = 0, 1

# --- exit codes of the processes inside
EXIT_SUPERVISOR = 70  # a cold or session supervisor failed
EXIT_SETUP = 71  # an executor failed before running the code (its ready pipe says how far it got)
EXIT_ZYGOTE = 72
EXIT_TEMPLATE_LOST = 3  # the hub lost a template: the host restarts the worker
EXIT_TEMPLATE = 74
EXIT_SLOT = 75

# --- ready pipe (executor -> host): b"P" once prepared, b"R" once its request is read and limits set
READY_PREPARED, READY_RUNNING = b"P", b"R"

# --- message tags (first byte of a SOCK_SEQPACKET message)
# host <-> hub: hub ready (JSON), preloading template up (JSON), a new slot (+ its socket), an error; quit
HUB_READY, HUB_PRELOADED, HUB_NEW_SLOT, ERROR, QUIT = b"R", b"L", b"N", b"E", b"Q"
# slot -> host: a spare executor (+ five pipe ends); host -> slot and session: kill the running call
SPARE, KILL = b"S", b"K"
# session (persistent interpreter) <-> host: ready, a call (+ five pipe ends), the interpreter ended
SESSION_READY, SESSION_CALL, SESSION_ENDED = b"R", b"C", b"X"
# hub -> template: make another slot (one lost); slot -> its zygote: fork an executor (+ its pipe ends);
# zygote -> slot: `ZMSG` tags forked, reaped; executor -> slot: `DONE`'s tag
REPLACE_SLOT, FORK, FORKED, REAPED, DONE_TAG = b"R", b"F", b"P", b"X", b"DONE"
# session supervisor <-> holder and call (`SESSION_MSG` tags): holder prepared, call forked, call done
HOLDER_READY, HOLDER_FORKED, CALL_DONE = b"H", b"P", b"D"
