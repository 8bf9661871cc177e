"""Run untrusted model-written Python against tests in a contained subprocess.

Used by the code reward (the rule-based accuracy reward of DeepSeek-R1 and
Kimi k1.5 grades code by running it against predefined test cases; PAPERS.md:
"Accuracy (rule: boxed answer / code tests)"). The model is untrusted but not
an adversary that knows this harness: the goal is that buggy, runaway or
reward-hacking code gets reward 0 and leaves the host unharmed, within a
wall-clock deadline.

How one run works: the parent writes a fresh working directory, starts
`python -I -c HARNESS` in a new session and feeds it, on stdin, a random
per-run nonce, the program and the test segments. The harness (trusted code)
applies limits, drops privileges, then runs the program and each test in one
module namespace, and reports every test outcome as `<nonce> case i ok` on an
inherited pipe whose number it took before any untrusted code ran. A run passes
only when the parent read `<nonce> done ...` and every test case passed; exit
status and stdout are never trusted. `sys.exit(0)`, `os._exit(0)`,
`raise SystemExit`, `exit()` at import time, printing fake results, patching
`print`/`sys.exit`/`os._exit`/`os.write` or builtins (restored before every
test) therefore cannot fake a pass.

Which protection holds where (checked by tests/test_sandbox.py):

| protection | root + Linux (CI, here) | non-root Linux | other OS |
|---|---|---|---|
| wall deadline, group kill (killpg SIGKILL), output cap | yes | yes | yes (no pidfd: polling) |
| RLIMIT_CPU / AS / FSIZE / CORE / NOFILE | yes | yes | where `resource` has them |
| own unprivileged uid per run (setuid) | yes | no | no |
| RLIMIT_NPROC (fork bombs) | yes, exact: the uid is this run's alone | counted over all the user's processes (we allow the current count + max_procs) | - |
| host files owned by others, parent process (kill -> EPERM) | protected | NOT protected: same uid can write the user's files and kill the parent | no |
| children that escape the process group (setsid) | killed: `kill(-1)` run as the run's uid | may survive | may survive |
| network | `unshare(CLONE_NEWNET)`: no interfaces, host loopback unreachable | `unshare(CLONE_NEWUSER|CLONE_NEWNET)` where user namespaces are allowed, else socket patch | socket patch |
| private /tmp, /var/tmp, /dev/shm (size-capped tmpfs; workdir inside) | yes (mount namespace) | no: shared, world-writable | no |

Deliberate difference from "setuid nobody": each run gets its own random uid
(with gid = uid) from a high range rather than 65534. Then RLIMIT_NPROC counts
only this run's processes, one run cannot signal another concurrent run, and
`kill(-1, SIGKILL)` as that uid removes every leftover process without a race.
If that range is not mapped (a user namespace with a short uid_map), 65534 is
used and the uid sweep is skipped, since concurrent runs would share the uid.

The mount namespace (root only) also solves a practical problem: after the
drop, the interpreter's stdlib may not be traversable (a pyenv under a 0700
/root, as on this machine), so such a directory is covered by a tmpfs that
exposes only the interpreter's subtree (hiding the rest of /root too). Where
mounts are refused but setuid works, the harness instead imports, as root
before the drop, the stdlib modules that the program and tests name (`import x`,
`from x import y`, `__import__("x")`); lazy imports inside the stdlib may then fail.

Known limits (documented, not defended):
- The socket-patch fallback only replaces `socket.socket`; code using ctypes or
  `_socket` internals can still reach the network. Namespaces are the real fix.
- Code that walks interpreter state (`sys._getframe`, `gc`, `ctypes`, trace
  functions) can find the nonce or the harness's locals; so can objects whose
  `__eq__` always returns True. We stop simple fakes, not code aimed at us.
- World-readable host files stay readable (there is no chroot); /proc shows
  host processes (their environments are unreadable to another uid).
- The workdir's total size is bounded by the /tmp tmpfs (= max_file_mb) only
  under the mount namespace; otherwise by RLIMIT_FSIZE per file and the deadline.
- Unix-domain sockets are not cut by a network namespace; file permissions
  (e.g. the root-owned docker socket) are what protects them.
"""

from __future__ import annotations

import ast
import json
import os
import random
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TAIL_BYTES = 4000
UID_BASE, UID_SPAN = 3_000_000, 10_000_000
NOBODY = 65534
# Imports that do something when imported (open a browser, print, start Tk).
_NO_PREIMPORT = {"antigravity", "this", "__hello__", "__phello__", "idlelib", "tkinter", "turtle",
                 "turtledemo", "test", "pydoc_data"}
# Codecs are looked up lazily (str.encode("latin-1") imports encodings.latin_1).
_BASE_PREIMPORT = ("encodings.ascii", "encodings.latin_1", "encodings.utf_16", "encodings.utf_32")
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Set False to skip the mount namespace (tests use it to exercise the pre-import fallback).
PRIVATE_MOUNTS = True

_active_uids: set[int] = set()
_uid_lock = threading.Lock()


@dataclass
class SandboxResult:
    passed: bool
    returncode: int | None
    timed_out: bool
    stdout_tail: str
    stderr_tail: str
    wall_s: float
    n_passed: int = 0
    n_tests: int = 0
    output_capped: bool = False
    network: str = ""
    filesystem: str = ""
    loaded: bool = False

    @property
    def pass_rate(self) -> float:
        if self.n_tests == 0:
            return float(self.passed)
        return self.n_passed / self.n_tests


@lru_cache(maxsize=8)
def _capabilities(python: str) -> dict:
    """Probe once per interpreter: which network isolation and whether setuid works."""
    uid = _uid_pool()[0]
    try:
        out = subprocess.run([python, "-I", "-S", "-c", PROBE, str(uid)], capture_output=True,
                             text=True, timeout=30, env=_ENV, cwd="/", check=False).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {"network": "socket-patch", "drop": False}


def network_isolation_mode(python: str = sys.executable) -> str:
    """'namespace', 'user-namespace' or 'socket-patch' (weakest): what runs get on this host."""
    return _capabilities(python)["network"]


def privilege_drop_available(python: str = sys.executable) -> bool:
    """True when runs execute under their own unprivileged uid (we are root and setuid works)."""
    return bool(_capabilities(python)["drop"])


@lru_cache(maxsize=1)
def _uid_pool() -> tuple[int, bool]:
    """(first uid to try, whether per-run uids are usable) from this namespace's uid_map."""
    try:
        for line in Path("/proc/self/uid_map").read_text().splitlines():
            start, _, count = (int(x) for x in line.split())
            if start <= UID_BASE and UID_BASE + UID_SPAN <= start + count:
                return UID_BASE, True
    except (OSError, ValueError):
        pass
    return NOBODY, False


def _take_uid() -> int:
    base, per_run = _uid_pool()
    if not per_run:
        return NOBODY
    rng = random.SystemRandom()
    with _uid_lock:
        while True:
            uid = base + rng.randrange(UID_SPAN)
            if uid not in _active_uids:
                _active_uids.add(uid)
                return uid


def split_tests(tests: str | list[str] | tuple[str, ...] | None) -> list[tuple[str, bool]]:
    """Cut test code into (source, is_case) segments run in order in the harness.

    A string is split at top-level `assert` statements: each assert is one case,
    the statements between them are setup (a failing setup fails every later
    case). Code with no top-level assert (HumanEval's `def check(...)` plus
    `check(f)`) is one case. A list gives one case per item.
    """
    if tests is None:
        return []
    if not isinstance(tests, str):
        return [(str(t), True) for t in tests if str(t).strip()]
    if not tests.strip():
        return []
    try:
        body = ast.parse(tests).body
    except SyntaxError:
        return [(tests, True)]
    if not any(isinstance(node, ast.Assert) for node in body):
        return [(tests, True)]
    lines = tests.splitlines(keepends=True)
    segments: list[tuple[str, bool]] = []
    setup: list[str] = []
    for node in body:
        src = "".join(lines[node.lineno - 1:node.end_lineno])
        if isinstance(node, ast.Assert):
            if setup:
                segments.append(("".join(setup), False))
                setup = []
            segments.append((src, True))
        else:
            setup.append(src)
    if setup:
        segments.append(("".join(setup), False))
    return segments


def _imported_stdlib(sources: list[str]) -> list[str]:
    """Stdlib modules named by imports in the sources (for hosts where the sandbox uid can't read them)."""
    names: set[str] = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("__import__", "import_module")):
                names.add(node.args[0].value)
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    keep = {n for n in names if n.split(".")[0] in stdlib and n.split(".")[0] not in _NO_PREIMPORT}
    keep.update(_BASE_PREIMPORT)
    if keep & {"socket", "urllib", "http", "ssl"}:
        keep.add("encodings.idna")  # host names are encoded lazily
    if keep & {"datetime", "time"}:
        keep.add("_strptime")  # strptime imports it lazily
    return sorted(keep)


def run_sandboxed(program: str, tests: str | list[str] | None = None, *, timeout_s: float = 10,
                  cpu_s: int = 10, memory_mb: int = 1024, max_procs: int = 64,
                  max_output_bytes: int = 1_000_000, max_file_mb: int = 64,
                  python: str = sys.executable) -> SandboxResult:
    """Run `program` then the trusted `tests` (see `split_tests`) in a fresh sandbox.

    `passed` is True only when the harness reported, with this run's nonce, that
    the program loaded and every test case passed (with no tests: that the
    program ran to the end without an exception).

    Limits: `timeout_s` wall clock for the whole run (then the group is killed);
    `cpu_s` CPU seconds per process (RLIMIT_CPU); `memory_mb` address space per
    process (RLIMIT_AS); `max_procs` processes and threads of the run
    (RLIMIT_NPROC); `max_output_bytes` stdout + stderr + report bytes before the
    run is killed; `max_file_mb` per file (RLIMIT_FSIZE) and the size of the
    private /tmp. `python` must be the same Python version as this one (the
    harness source is passed with -c).
    """
    segments = split_tests(tests)
    caps = _capabilities(python)
    uid = _take_uid() if caps["drop"] else None
    per_run_uid = uid is not None and uid != NOBODY
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="r1kit-sbx-")
    rfd, wfd = os.pipe()
    cfg = {
        "program": program, "segments": segments, "uid": uid, "net": caps["network"] != "socket-patch",
        "mounts": PRIVATE_MOUNTS,
        "preimport": _imported_stdlib([program] + [s for s, _ in segments]) if uid is not None else [],
        "limits": {"cpu": int(cpu_s), "as": int(memory_mb) << 20, "fsize": int(max_file_mb) << 20,
                   "nofile": 256, "nproc": int(max_procs)},
    }
    env = dict(_ENV, HOME=workdir, TMPDIR=workdir)
    t0 = time.monotonic()
    proc = None
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        proc = subprocess.Popen([python, "-I", "-c", HARNESS, str(wfd)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(wfd,),
                                cwd=workdir, env=env, start_new_session=True)
        os.close(wfd)
        wfd = -1
        try:
            proc.stdin.write(nonce.encode() + b"\n" + json.dumps(cfg).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        streams, timed_out, capped = _collect(proc, rfd, t0 + timeout_s, max_output_bytes)
        wall = time.monotonic() - t0
        _kill_group(proc)
        returncode = proc.wait()
        report = _parse_report(streams[rfd], nonce)
        if per_run_uid and not (report["done"] and returncode == 0):
            _sweep_uid(python, uid)
    finally:
        if proc is not None and proc.returncode is None:
            _kill_group(proc)
            proc.wait()
        for fd in (rfd, wfd):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)
        if per_run_uid:
            with _uid_lock:
                _active_uids.discard(uid)
    n_tests = sum(1 for _, is_case in segments if is_case)
    n_passed = len(report["cases"])
    passed = report["done"] and report["loaded"] and n_passed == n_tests
    return SandboxResult(
        passed=passed, returncode=returncode, timed_out=timed_out,
        stdout_tail=_tail(streams[proc.stdout.fileno()]), stderr_tail=_tail(streams[proc.stderr.fileno()]),
        wall_s=wall, n_passed=n_passed, n_tests=n_tests, output_capped=capped,
        network=report["network"] or caps["network"], filesystem=report["fs"], loaded=report["loaded"])


def _collect(proc: subprocess.Popen, rfd: int, deadline: float, cap: int):
    """Read stdout, stderr and the report pipe until the harness exits, the deadline, or the cap."""
    fds = [proc.stdout.fileno(), proc.stderr.fileno(), rfd]
    bufs = {fd: bytearray() for fd in fds}
    total = 0
    sel = selectors.DefaultSelector()
    for fd in fds:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd = -1
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ)
        except OSError:
            pidfd = -1
    timed_out = capped = exited = False
    try:
        while not capped:
            if exited:  # drain what the harness wrote before exiting, then stop
                ready = [fd for fd in fds if fd in sel.get_map()]
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                ready = [k.fd for k, _ in sel.select(min(remaining, 0.05 if pidfd < 0 else remaining))]
                if pidfd in ready or (pidfd < 0 and _has_exited(proc)):
                    exited = True
                    continue
            progressed = False
            for fd in ready:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(fd)
                    continue
                progressed = True
                total += len(data)
                buf = bufs[fd]
                buf += data
                if fd != rfd and len(buf) > 2 * TAIL_BYTES:
                    del buf[:-TAIL_BYTES]
                if total > cap:
                    capped = True
                    break
            if exited and not progressed:
                break
    finally:
        sel.close()
        if pidfd >= 0:
            os.close(pidfd)
    return bufs, timed_out, capped


def _has_exited(proc: subprocess.Popen) -> bool:
    # WNOWAIT leaves the zombie in place, so its pid (= group id) cannot be reused before killpg.
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _sweep_uid(python: str, uid: int) -> None:
    """Kill every process left with this run's uid, including ones that left the group via setsid."""
    try:
        subprocess.run([python, "-I", "-S", "-c", KILLER, str(uid)], env=_ENV, cwd="/", timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _parse_report(raw: bytearray, nonce: str) -> dict:
    report = {"done": False, "loaded": False, "cases": set(), "network": "", "fs": ""}
    prefix = nonce + " "
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.startswith(prefix):
            continue
        kind, *args = line[len(prefix):].split()
        if kind == "case" and len(args) == 2 and args[1] == "1":
            report["cases"].add(int(args[0]))
        elif kind == "loaded":
            report["loaded"] = True
        elif kind == "net" and args:
            report["network"] = args[0]
        elif kind == "fs" and args:
            report["fs"] = args[0]
        elif kind == "done":
            report["done"] = True
    return report


def _tail(buf: bytearray) -> str:
    return bytes(buf[-TAIL_BYTES:]).decode("utf-8", "replace")


# ---- code run in the child interpreter (`python -I -c ...`) ----
# ---- code run in the child interpreter (`python -I -c ...`): sandbox_child.py ----

HARNESS = (Path(__file__).with_name("sandbox_child.py")).read_text()

PROBE = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
root = os.geteuid() == 0
if root and libc.unshare(0x40000000) == 0:
    net = "namespace"
elif not root and libc.unshare(0x50000000) == 0:
    net = "user-namespace"
else:
    net = "socket-patch"
drop = False
if root:
    uid = int(sys.argv[1])
    try:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        drop = os.getuid() == uid
    except OSError:
        pass
print(json.dumps({"network": net, "drop": drop}))
"""

KILLER = r"""
import os, sys
uid = int(sys.argv[1])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
for _ in range(3):
    try:
        os.kill(-1, 9)
    except OSError:
        break
"""
