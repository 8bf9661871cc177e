"""Attacks on the code reward's sandbox (issue 14), each through the reward as `r1kit grpo` calls it.

Every wrong solution here scored 1.0 before, or left something behind after the call returned;
each test states what must hold now. Programs that need a marker the test can find on the host
(a process, a file) carry a random one, so that sandbox runs of other processes on the machine
cannot disturb the checks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

import pytest

from r1kit.rewards import resolve_reward, sandbox
from r1kit.rewards.sandbox import describe_isolation, memory_cap_mode, privilege_drop_available, run_sandboxed

DROP = privilege_drop_available()
needs_root = pytest.mark.skipif(not DROP, reason="needs root: namespaces, cgroups and a uid per run")
CODE = resolve_reward("code").fn


def fenced(code: str) -> str:
    return f"Here is the solution.\n```python\n{code}\n```\n"


def score(programs: list[str], tests, prompts=None, entry_point=None, **limits) -> list[float | None]:
    """The code reward as r1kit grpo calls it (through the registry and its guard)."""
    n = len(programs)
    tests = tests if isinstance(tests, list) else [tests] * n
    return CODE(
        prompts=prompts or ["Write f."] * n,
        completions=[fenced(p) for p in programs],
        completion_ids=None,
        tests=tests,
        entry_point=entry_point or [None] * n,
        **limits,
    )


# ---- a sealed namespace: rebinding builtins or stdlib does not fool the tests ----

RIGHT = "def f(x):\n    return x + 1\n"
ABS_TESTS = "assert abs(f(1) - 2) < 1e-9\nassert abs(f(5) - 6) < 1e-9"
ISCLOSE_TESTS = "import math\nassert math.isclose(f(1), 2)\nassert math.isclose(f(5), 6)"
# name: (tests, a right solution, a wrong one that rebinds or patches what the tests use)
HACKS = {
    "module-level def abs": (ABS_TESTS, RIGHT, "def abs(x):\n    return 0\ndef f(x):\n    return 0\n"),
    "__builtins__ replaced by a dict": (
        ABS_TESTS,
        RIGHT,
        "import builtins\n__builtins__ = dict(vars(builtins), abs=lambda v: 0)\ndef f(x):\n    return 0\n",
    ),
    "__builtins__ replaced by a module": (
        ABS_TESTS,
        RIGHT,
        (
            "import builtins, types\nfake = types.ModuleType('builtins')\nvars(fake).update(vars(builtins))\n"
            "fake.abs = lambda v: 0\n__builtins__ = fake\ndef f(x):\n    return 0\n"
        ),
    ),
    "set = lambda": (
        "assert set(f([1, 2])) == {2, 3}",
        "def f(x):\n    return [v + 1 for v in x]\n",
        "set = lambda *a: {2, 3}\ndef f(x):\n    return [9]\n",
    ),
    "sorted = lambda": (
        "assert sorted(f(3)) == [1, 2, 3]",
        "def f(n):\n    return list(range(n, 0, -1))\n",
        "sorted = lambda *a: [1, 2, 3]\ndef f(x):\n    return []\n",
    ),
    "patch math.isclose": (
        ISCLOSE_TESTS,
        RIGHT,
        "import math\nmath.isclose = lambda *a, **k: True\ndef f(x):\n    return 0\n",
    ),
    "patch sys.modules['math']": (
        ISCLOSE_TESTS,
        RIGHT,
        (
            "import sys, types\nfake = types.ModuleType('math')\nfake.isclose = lambda *a, **k: True\n"
            "sys.modules['math'] = fake\ndef f(x):\n    return 0\n"
        ),
    ),
    "class named math, tests use the solution's import": (
        "assert math.isclose(f(1), 2)",
        "import math\n" + RIGHT,
        "class math:\n    isclose = staticmethod(lambda *a, **k: True)\ndef f(x):\n    return 0\n",
    ),
    "patch collections.Counter.__eq__": (
        "from collections import Counter\nassert Counter(f(1)) == Counter([1, 2])",
        "def f(x):\n    return [2, 1]\n",
        "import collections\ncollections.Counter.__eq__ = lambda a, b: True\ndef f(x):\n    return [0]\n",
    ),
    "patch math.isclose while the tests run": (
        "import math\ndef check(candidate):\n    candidate(0)\n    assert math.isclose(candidate(1), 2)\ncheck(f)",
        RIGHT,
        "def f(x):\n    import math\n    math.isclose = lambda *a, **k: True\n    return 0\n",
    ),
    "a thread that keeps patching": (
        ISCLOSE_TESTS + "\n" + ABS_TESTS,
        RIGHT,
        (
            "import builtins, math, threading\n"
            "def spoil():\n    while True:\n        math.isclose = lambda *a, **k: True\n"
            "        builtins.abs = lambda v: 0\n"
            "threading.Thread(target=spoil, daemon=True).start()\ndef f(x):\n    return 0\n"
        ),
    ),
}


@pytest.mark.parametrize("name", list(HACKS))
def test_rebinding_builtins_or_stdlib_does_not_fool_the_tests(name):
    tests, right, hack = HACKS[name]
    assert score([right, hack], tests) == [1.0, 0.0]


HUMANEVAL_PROMPT = '''import math


def poly(xs: list, x: float):
    """Evaluates the polynomial with coefficients xs at x."""
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def find_zero(xs: list):
    """A zero of the polynomial xs (even length, largest coefficient non-zero)."""
'''
HUMANEVAL_TESTS = """

METADATA = {}


def check(candidate):
    for coeffs in ([1, 2], [-6, 11, -6, 1], [3, -4, 1, 2]):
        assert math.fabs(poly(coeffs, candidate(coeffs))) < 1e-4

"""
BISECT = (
    "def find_zero(xs: list):\n    lo, hi = -1.0, 1.0\n    while poly(xs, lo) * poly(xs, hi) > 0:\n"
    "        lo, hi = lo * 2, hi * 2\n    for _ in range(200):\n        mid = (lo + hi) / 2\n"
    "        if poly(xs, lo) * poly(xs, mid) <= 0:\n            hi = mid\n        else:\n            lo = mid\n"
    "    return lo\n"
)


@pytest.mark.parametrize(
    "hack",
    [
        "def poly(xs, x):\n    return 0.0\n\ndef find_zero(xs):\n    return 0.0\n",
        (
            "class math:\n    pow = staticmethod(lambda *a: 0.0)\n    fabs = staticmethod(lambda *a: 0.0)\n\n"
            "def find_zero(xs):\n    return 0.0\n"
        ),
    ],
)
def test_humaneval_prompt_helpers_come_from_the_question_not_the_solution(hack):
    # HumanEval/32's tests call the prompt's poly() and math: a solution must not redefine them.
    out = score(
        [BISECT, hack], HUMANEVAL_TESTS, prompts=[HUMANEVAL_PROMPT] * 2, entry_point=["find_zero"] * 2
    )
    assert out == [1.0, 0.0]


@pytest.mark.parametrize(
    "solution,tests",
    [
        ("def sum(a, b):\n    return a + b\n", "assert sum(10, 15) == 25\nassert sum(1, 2) == 3"),  # MBPP 126
        (
            "import sys\ndef size(t):\n    return sys.getsizeof(t)\n",
            "assert size((1, 2)) == sys.getsizeof((1, 2))",
        ),
        (
            (
                "class Node:\n    def __init__(self, v):\n        self.v, self.kids = v, []\n"
                "def count(n):\n    return 1 + sum(count(k) for k in n.kids)\n"
            ),
            "root = Node(1)\nroot.kids.append(Node(2))\nassert count(root) == 2",
        ),
        (
            "def shout(s):\n    print(s.upper())\n",
            (
                "import contextlib, io\nbuf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n    shout('hi')\n"
                "assert buf.getvalue() == 'HI\\n'"
            ),
        ),
        (
            "def ask():\n    return int(input()) * 2\n",
            "def check():\n    import builtins\n    builtins.input = lambda *a: '21'\n    assert ask() == 42\ncheck()",
        ),
    ],
)
def test_honest_solutions_still_pass(solution, tests):
    # What a sealed namespace must keep: a function named like a builtin (MBPP 126 `sum`), tests
    # using the solution's imports and classes, tests that set sys.stdout or builtins.input.
    assert score([solution], tests) == [1.0]


# ---- every process of the run is gone when the reward returns ----

RACE = r"""
import os, threading
def spawn():
    while True:
        try:
            os.posix_spawn("/bin/sleep", ["sleep", "MARK"], {}, setsid=True)
        except OSError:
            pass
threading.Thread(target=spawn, daemon=True).start()
def f(x):
    return x + 1
"""


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker` (zombies count as gone)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if marker.encode() not in Path(f"/proc/{entry}/cmdline").read_bytes():
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


def race(runs: int) -> list[int]:
    """Runs whose setsid children, spawned by a thread up to the harness's last moment, outlived the call."""
    marker = f"300.{secrets.randbelow(10**9):09d}"
    program = RACE.replace("MARK", marker)
    leftover = []
    try:
        for i in range(runs):
            assert score([program], "assert f(1) == 2") == [1.0]
            if processes_with(marker):
                leftover.append(i)
    finally:
        for pid in processes_with(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
    return leftover


@needs_root
def test_no_process_outlives_the_call_fork_race():
    # Before: 18 of 120 runs left `sleep` processes running after the reward returned.
    assert race(60) == []


@needs_root
def test_no_process_outlives_the_call_without_cgroups(monkeypatch):
    # Hosts without cgroup v2: kill(-1) sent as the run's uid from a fresh process.
    monkeypatch.setattr(sandbox, "USE_CGROUPS", False)
    assert race(25) == []


@pytest.mark.slow
@needs_root
def test_no_process_outlives_the_call_fork_race_long():
    assert race(600) == []


# ---- one memory cap for the whole run ----

CHILDREN = r"""
import os, select, time
def held():
    r, w = os.pipe()
    pids = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            block = bytearray(150 << 20)
            for j in range(0, len(block), 4096):
                block[j] = 1
            os.write(w, b"x")
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
    got, deadline = 0, time.monotonic() + 3
    while got < 3 and time.monotonic() < deadline:
        if select.select([r], [], [], 0.1)[0]:
            got += len(os.read(r, 3))
    return sum(os.waitpid(p, os.WNOHANG) == (0, 0) for p in pids) if got == 3 else 0
"""
MEMFDS = r"""
import os, time
def held():
    fds, chunk = [], b"x" * (1 << 20)
    for i in range(5):
        fd = os.memfd_create(f"m{i}")
        for _ in range(60):
            os.write(fd, chunk)
        fds.append(fd)
    time.sleep(0.5)  # held, not just touched: the watchdog samples every 50 ms
    return len(fds) * 60
"""
USERNS_TMPFS = r"""
import ctypes, os, time
def held():
    libc = ctypes.CDLL(None, use_errno=True)
    uid = os.getuid()
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/uid_map becomes ours to write
    if libc.unshare(0x10000000 | 0x00020000) != 0:  # a user namespace, then a mount namespace in it
        return -1
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {uid} 1")
    os.makedirs("/tmp/big", exist_ok=True)
    if libc.mount(b"none", b"/tmp/big", b"tmpfs", 0, b"size=8g") != 0:
        return -2
    chunk = b"x" * (1 << 20)
    for i in range(7):
        with open(f"/tmp/big/f{i}", "wb") as f:
            for _ in range(60):
                f.write(chunk)
    time.sleep(0.5)
    return 7 * 60
"""
MEMORY_TESTS = {
    "3 children x 150 MB": (CHILDREN, "assert held() == 3"),
    "memfds, 5 x 60 MB": (MEMFDS, "assert held() == 300"),
    "tmpfs in a user namespace, 7 x 60 MB": (USERNS_TMPFS, "assert held() == 420"),
}


@needs_root
@pytest.mark.parametrize("mode", ["host", "watchdog"])
@pytest.mark.parametrize("name", list(MEMORY_TESTS))
def test_one_memory_cap_for_the_whole_run(name, mode, monkeypatch):
    # Each process stays under RLIMIT_AS (256 MB); together they are over the run's 256 MB cap.
    if mode == "watchdog":
        monkeypatch.setattr(sandbox, "USE_CGROUPS", False)
    program, tests = MEMORY_TESTS[name]
    start = time.monotonic()
    assert score([program], tests, memory_mb=256, timeout_s=15) == [0.0]
    assert time.monotonic() - start < 14
    result = run_sandboxed(program, tests, memory_mb=256, timeout_s=15)
    assert not result.passed and result.memory == (memory_cap_mode() if mode == "host" else "watchdog")
    assert result.error in ("memory", "load_error", "failed")  # killed at the cap, or refused before it


# ---- shared memory, IPC and files are private to the run ----

SYSV_WRITE = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
def leave(key, text):
    sid = libc.shmget(key, 4096, 0o1000 | 0o666)
    addr = libc.shmat(sid, None, 0)
    ctypes.memmove(addr, text, len(text))
    return sid >= 0
"""
SYSV_READ = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
def found(key):
    sid = libc.shmget(key, 0, 0)
    if sid < 0:
        return b""
    return ctypes.string_at(libc.shmat(sid, None, 0), 16)
"""
LOCK_WRITE = "def leave(path, text):\n    open(path, 'w').write(text)\n    return True\n"
LOCK_READ = (
    "def found(path):\n    try:\n        return open(path).read()\n    except OSError:\n        return ''\n"
)


@needs_root
def test_sysv_shared_memory_does_not_outlive_the_run():
    key = 0x7E000000 + secrets.randbelow(1 << 20)
    secret = secrets.token_hex(8).encode()
    assert score([SYSV_WRITE], f"assert leave({key}, {secret!r})") == [1.0]
    assert score([SYSV_READ], f"assert found({key}) == {secret!r}") == [
        0.0
    ]  # before: 1.0, the next run read it
    host_keys = [line.split()[0] for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
    assert str(key) not in host_keys


@needs_root
@pytest.mark.parametrize("folder", ["/run/lock", "/var/lock", "/var/tmp", "/dev/shm", "/tmp"])
def test_files_in_writable_host_folders_are_not_shared_between_runs(folder):
    path = f"{folder}/r1kit-attack-{secrets.token_hex(6)}"
    try:
        assert score([LOCK_WRITE], f"assert leave({path!r}, 'secret')") == [1.0]
        assert score([LOCK_READ], f"assert found({path!r}) == 'secret'") == [0.0]
        assert not os.path.exists(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def world_writable_dirs() -> list[str]:
    """Host directories anyone may write into (the sandbox uid among them), outside /proc and /sys."""
    found = []
    for top in ("/tmp", "/var", "/run", "/dev", "/srv", "/opt", "/home", "/mnt", "/usr", "/etc"):
        for root, dirs, _ in os.walk(top):
            depth = root.count("/")
            dirs[:] = [d for d in dirs if depth < 4 and not os.path.islink(os.path.join(root, d))]
            try:
                if os.stat(root).st_mode & 0o002:
                    found.append(root)
            except OSError:
                continue
    return sorted(set(found))


@needs_root
def test_no_writable_host_path_outside_the_runs_own_folders():
    marker = f"r1kit-attack-{secrets.token_hex(6)}"
    targets = world_writable_dirs() + ["/", "/usr", "/etc", "/var", "/root", "/run/lock/subsys"]
    program = (
        "import os\ndef spray(targets, name):\n    done = []\n    for d in targets:\n"
        "        try:\n            open(os.path.join(d, name), 'w').write('x')\n            done.append(d)\n"
        "        except OSError:\n            pass\n    return done\n"
    )
    try:
        assert score([program], f"assert spray({targets!r}, {marker!r}) is not None") == [1.0]
        assert [d for d in targets if os.path.exists(os.path.join(d, marker))] == []
    finally:
        for d in targets:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(d, marker))


# ---- a program writing to the report channel ----

FORGE = r"""
import os, sys
frame = sys._getframe()
while frame is not None and "nonce" not in frame.f_locals:
    frame = frame.f_back
nonce, rfd = bytes(frame.f_locals["nonce"]), frame.f_locals["rfd"]
for junk in (b" case abc 1", b" ", b" case 99 1", b" case \xc2\xb2 1", b" done extra", b"\xff\xfe"):
    os.write(rfd, nonce + junk + b"\n")
def f(x):
    return 0
"""


def test_malformed_report_lines_are_a_failure_not_an_error():
    # Before: ValueError out of the reward (int('abc'), unpacking an empty line).
    assert score([FORGE], "assert f(1) == 2\nassert f(2) == 3") == [0.0]
    result = run_sandboxed(FORGE, "assert f(1) == 2\nassert f(2) == 3")
    assert (result.passed, result.n_passed, result.error) == (False, 0, "report_tampered")


def test_describe_isolation_matches_what_a_run_reports():
    described = describe_isolation()
    result = run_sandboxed("x = 1", "assert x == 1")
    assert result.passed
    assert (described["memory_cap"], described["network"]) == (result.memory, result.network)
    if DROP:  # root here: everything the table promises for a CI machine
        assert described["own_uid"] and described["private_mounts"] and result.filesystem == "private"
        assert result.ipc == "namespace" and described["final_kill"] in (
            "cgroup.kill",
            "kill(-1) as the run's uid",
        )
