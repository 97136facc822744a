"""steady_heap: freed large blocks go back to the OS instead of staying on a growing heap."""

import subprocess
import sys

import pytest

# 8 MB blocks, the first freed at once (which raises glibc's default mmap threshold above 8 MB), then 40
# allocated and all but the newest freed: on the default heap the newest pins the freed ones below it.
PROBE = """
import ctypes, sys
from r1ci_core.training import steady_heap
if sys.argv[1] == "steady":
    assert steady_heap()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
size = 8 << 20
libc.free(libc.malloc(size))
blocks = [libc.malloc(size) for _ in range(40)]
for b in blocks:
    ctypes.memset(b, 1, size)
before = rss_mb()
for b in blocks[:-1]:
    libc.free(b)
print(before - rss_mb())
"""


def _released_mb(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_steady_heap_returns_freed_blocks_to_the_os(monkeypatch):
    for env in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(env, raising=False)
    assert _released_mb("default") < 50  # 312 MB freed, almost none of it returned
    assert _released_mb("steady") > 250
