"""The sandbox: every attack contained (result not passed, host unharmed, within the deadline)."""

from __future__ import annotations

import ast
import os
import resource
import secrets
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

import pytest

from r1kit.rewards import sandbox
from r1kit.rewards.sandbox import (
    TAIL_BYTES,
    UID_BASE,
    UID_SPAN,
    network_isolation_mode,
    privilege_drop_available,
    run_sandboxed,
    split_tests,
)

DROP = privilege_drop_available()
needs_drop = pytest.mark.skipif(
    not DROP,
    reason="needs root and a working setuid: without a uid of its own the sandbox cannot "
    "enforce RLIMIT_NPROC, protect the user's files or stop a kill of the parent",
)


def timed(program, tests=None, **kw):
    start = time.monotonic()
    result = run_sandboxed(program, tests, **kw)
    return result, time.monotonic() - start


def alive(pid: int) -> bool:
    """True for a live process; a zombie (killed, waiting for init to reap it) counts as dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def sandbox_uid_processes() -> list[int]:
    """Live processes whose real uid is in the per-run sandbox uid range."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if UID_BASE <= int(line.split()[1]) < UID_BASE + UID_SPAN and alive(int(entry)):
                        found.append(int(entry))
                    break
        except OSError:
            continue
    return found


# ---- test splitting and counting ----


def test_split_tests_setup_and_cases():
    code = "x = 1\nassert x == 1\nassert x == 2\ny = 3\nassert y == 3"
    assert split_tests(code) == [
        ("x = 1\n", False),
        ("assert x == 1\n", True),
        ("assert x == 2\n", True),
        ("y = 3\n", False),
        ("assert y == 3", True),
    ]
    humaneval = "def check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\n"
    assert split_tests(humaneval) == [(humaneval, True)]
    assert split_tests(["assert a", " ", "assert b"]) == [("assert a", True), ("assert b", True)]
    assert split_tests("") == [] and split_tests(None) == []


def test_counts_cases_and_setup_failure_breaks_later_cases():
    ok, _ = timed("def f(x):\n    return x + 1\nprint('hello')", "assert f(1) == 2\nassert f(2) == 3")
    assert (ok.passed, ok.n_passed, ok.n_tests, ok.loaded) == (True, 2, 2, True)
    assert ok.stdout_tail == "hello\n"
    partial, _ = timed("def f(x):\n    return x + 1", "assert f(1) == 2\nassert f(2) == 4\nassert f(3) == 4")
    assert (partial.passed, partial.n_passed, partial.n_tests) == (False, 2, 3)
    assert "AssertionError" in partial.stderr_tail
    broken, _ = timed("pass", "assert True\nraise ValueError('setup')\nassert True")
    assert (broken.passed, broken.n_passed, broken.n_tests) == (False, 1, 2)
    no_tests, _ = timed("x = 1")
    assert no_tests.passed and no_tests.n_tests == 0


# ---- runaway code ----


def test_infinite_loop_hits_wall_deadline():
    result, elapsed = timed("while True:\n    pass", "assert True", timeout_s=1.5)
    assert result.timed_out and not result.passed
    assert result.returncode == -9
    assert 1.4 < elapsed < 3.0


def test_cpu_limit_kills_busy_loop_before_wall_deadline():
    result, elapsed = timed("while True:\n    pass", "assert True", timeout_s=20, cpu_s=1)
    assert not result.timed_out and not result.passed
    assert result.returncode in (-9, -24)  # SIGKILL or SIGXCPU from RLIMIT_CPU
    assert elapsed < 15  # 1 s of CPU; the margin is for a loaded machine, the wall deadline is 20 s


def test_allocating_50_gb_fails_with_memory_error():
    result, elapsed = timed("x = bytearray(50 * 1024 ** 3)", "assert True", memory_mb=512)
    assert not result.passed and not result.loaded
    assert "MemoryError" in result.stderr_tail
    assert elapsed < 5


@needs_drop
def test_fork_bomb_is_bounded_and_cleaned_up():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result, elapsed = timed(bomb, "assert True", timeout_s=2, max_procs=8)
    assert result.timed_out and not result.passed
    assert elapsed < 5
    deadline = time.monotonic() + 3
    while sandbox_uid_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_uid_processes() == []


@pytest.mark.parametrize("setsid,early_exit", [(False, False), (True, False), (True, True)])
def test_no_child_survives(setsid, early_exit):
    if setsid and not DROP:
        pytest.skip(
            "a child that leaves the process group is only reachable through the run's own uid (root)"
        )
    program = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        f"    if {setsid}:\n        os.setsid()\n"
        "    print('child', os.getpid(), flush=True)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        f"if {early_exit}:\n    time.sleep(0.2)\n    os._exit(0)\n"
        "time.sleep(0.2)\n"
    )
    result, elapsed = timed(program, "assert True", timeout_s=5)
    assert result.passed is (not early_exit)
    pid = int(result.stdout_tail.split()[1])
    deadline = time.monotonic() + 2
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)
    assert elapsed < 3


def test_printing_gigabytes_is_capped():
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    program = "import sys\nchunk = 'x' * (1 << 20)\nwhile True:\n    sys.stdout.write(chunk)\n"
    result, elapsed = timed(program, "assert True", timeout_s=20, max_output_bytes=2_000_000)
    assert result.output_capped and not result.passed and not result.timed_out
    assert len(result.stdout_tail) <= TAIL_BYTES and set(result.stdout_tail) <= {"x"}
    assert elapsed < 5
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 50


# ---- host protection ----


@needs_drop
def test_root_owned_files_cannot_be_modified_or_deleted():
    # A root-owned 0755 directory the sandbox can see (not under /tmp, which it gets privately).
    # Not under the checkout either: CI may clone into /tmp. /var/lib is root-owned and shared.
    victim_dir = Path(tempfile.mkdtemp(prefix="r1kit-sbx-victim-", dir="/var/lib"))
    escape = Path(f"/tmp/r1kit_sandbox_escape_{secrets.token_hex(6)}")
    try:
        victim_dir.chmod(0o755)
        victim = victim_dir / "precious.txt"
        victim.write_text("precious")
        victim.chmod(0o644)
        program = f"""
import os, shutil
d, v = {str(victim_dir)!r}, {str(victim)!r}
print('read', open(v).read())
attempts = [
    ('write', lambda: open(v, 'w').write('pwned')),
    ('append', lambda: open(v, 'a').write('pwned')),
    ('delete', lambda: os.remove(v)),
    ('rename', lambda: os.rename(v, v + '.bak')),
    ('create', lambda: open(os.path.join(d, 'new.txt'), 'w')),
    ('chmod', lambda: os.chmod(v, 0o777)),
    ('rmtree', lambda: shutil.rmtree(d)),
]
for name, attempt in attempts:
    try:
        attempt()
        print('DONE', name)
    except OSError as e:
        print('denied', name, type(e).__name__)
open({str(escape)!r}, 'w').write('escaped')
print('wrote tmp')
"""
        result, elapsed = timed(program, "assert True")
        lines = result.stdout_tail.splitlines()
        assert lines[0] == "read precious"
        assert [ln.split()[1] for ln in lines[1:8]] == [
            "write",
            "append",
            "delete",
            "rename",
            "create",
            "chmod",
            "rmtree",
        ]
        # EACCES (another uid's files) or, with the host's mounts read-only in the run, EROFS
        assert all(
            ln.startswith("denied") and ln.split()[2] in ("PermissionError", "OSError") for ln in lines[1:8]
        )
        assert victim.read_text() == "precious"
        assert sorted(p.name for p in victim_dir.iterdir()) == ["precious.txt"]
        assert stat.S_IMODE(victim.stat().st_mode) == 0o644
        # /tmp inside the sandbox is a private tmpfs: the write succeeded there, not on the host.
        assert result.filesystem == "private" and lines[8] == "wrote tmp"
        assert not escape.exists()
        assert elapsed < 5
    finally:
        shutil.rmtree(victim_dir, ignore_errors=True)
        escape.unlink(missing_ok=True)


def test_environment_secrets_are_not_visible(monkeypatch):
    secret = "s3cr3t-" + secrets.token_hex(8)
    monkeypatch.setenv("R1KIT_SECRET", secret)
    program = (
        "import os\nprint(sorted(os.environ))\nprint(dict(os.environ))\n"
        f"if {DROP}:\n"
        "    for pid in (os.getppid(), 1):\n"
        "        try:\n"
        "            print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "        except OSError as e:\n"
        "            print('denied', pid, type(e).__name__)\n"
    )
    result, _ = timed(program, "assert True")
    assert result.passed
    assert secret not in result.stdout_tail and secret not in result.stderr_tail
    keys = ast.literal_eval(result.stdout_tail.splitlines()[0])
    assert "R1KIT_SECRET" not in keys and set(keys) <= {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
    }
    if DROP:
        # The parent's /proc/<pid>/environ is unreadable to another uid.
        assert f"denied {os.getpid()} PermissionError" in result.stdout_tail
        assert "denied 1 PermissionError" in result.stdout_tail


def test_network_connection_to_host_is_blocked():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    program = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('blocked', type(e).__name__, e.errno)\n"
    )
    try:
        result, elapsed = timed(program, "assert True")
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert result.stdout_tail.startswith("blocked") and "CONNECTED" not in result.stdout_tail
    assert result.network == network_isolation_mode()
    if result.network == "namespace":
        assert result.stdout_tail.split()[2] == "101"  # ENETUNREACH: the namespace has no interfaces up
    assert elapsed < 5


def test_socket_patch_fallback_blocks_connection(monkeypatch):
    monkeypatch.setattr(sandbox, "_capabilities", lambda python: {"network": "socket-patch", "drop": DROP})
    program = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except OSError as e:\n    print(type(e).__name__, e.errno)\n"
    )
    result, _ = timed(program)
    assert result.network == "socket-patch" and result.stdout_tail == "PermissionError 13\n"


@needs_drop
def test_without_mounts_named_stdlib_modules_are_preimported(monkeypatch):
    # Here the stdlib lies under a 0700 /root: after the drop only pre-imported modules load.
    monkeypatch.setattr(sandbox, "PRIVATE_MOUNTS", False)
    result, _ = timed(
        "import re, math\nprint(re.sub('a', 'b', 'aa'), math.isqrt(17))", "assert 'x'.encode('latin-1')"
    )
    assert (result.passed, result.filesystem, result.stdout_tail) == (True, "host", "bb 4\n")


@needs_drop
def test_cannot_kill_parent():
    program = (
        "import os, signal\n"
        "for name, hit in [('kill', lambda: os.kill(os.getppid(), signal.SIGKILL)),\n"
        "                  ('killpg', lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL))]:\n"
        "    try:\n"
        "        hit()\n"
        "        print(name, 'sent')\n"
        "    except OSError as e:\n"
        "        print(name, 'denied', e.errno)\n"
    )
    result, _ = timed(program, "assert True")
    assert result.stdout_tail.splitlines() == ["kill denied 1", "killpg denied 1"]  # EPERM
    assert alive(os.getpid())


# ---- faking a pass ----

TESTS = "assert f(1) == 2\nassert f(5) == 6"
FAKES = {
    "sys.exit": "import sys\nsys.exit(0)\ndef f(x):\n    return x + 1",
    "os._exit": "import os\nos._exit(0)",
    "raise SystemExit": "raise SystemExit(0)",
    "exit() at import": "exit()",
    "exit inside the call": "def f(x):\n    import sys\n    sys.exit(0)",
    "os._exit inside the call": "def f(x):\n    import os\n    os._exit(0)",
    "write done on every fd": "import os\nfor fd in range(0, 64):\n    try:\n        os.write(fd, b'done\\n')\n"
    "    except OSError:\n        pass\nos._exit(0)",
    "patch exits and print": "import builtins, os, sys\nos._exit = sys.exit = lambda *a: None\n"
    "builtins.print = lambda *a, **k: None\ndef f(x):\n    return 0",
    "patch builtins.abs": "import builtins\nbuiltins.abs = lambda v: 0\ndef f(x):\n    return 0",
    "patch __import__": "import builtins\nreal = builtins.__import__\n"
    "def fake(name, *a, **k):\n"
    "    if name == 'math':\n"
    "        return type('M', (), {'isclose': staticmethod(lambda *a, **k: True)})\n"
    "    return real(name, *a, **k)\n"
    "builtins.__import__ = fake\ndef f(x):\n    return 0",
}
TESTS_FOR = {
    "patch builtins.abs": "assert abs(f(1) - 2) < 1e-9",
    "patch __import__": "import math\nassert math.isclose(f(1), 2)",
}


@pytest.mark.parametrize("name", list(FAKES))
def test_fakes_do_not_pass(name):
    tests = TESTS_FOR.get(name, TESTS)
    control, _ = timed("def f(x):\n    return x + 1", tests)
    assert control.passed  # the same tests do pass for a correct solution
    result, elapsed = timed(FAKES[name], tests)
    assert not result.passed and result.n_passed == 0
    assert elapsed < 5


def test_redefining_check_does_not_pass():
    tests = "def check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\n"
    result, _ = timed("def f(x):\n    return 0\ndef check(candidate):\n    pass", tests)
    assert not result.passed and result.n_tests == 1 and result.n_passed == 0
