"""Run untrusted model-written Python against tests in a contained subprocess.

Used by the code reward (the rule-based accuracy reward of DeepSeek-R1 and
Kimi k1.5 grades code by running it against predefined test cases; PAPERS.md:
"Accuracy (rule: boxed answer / code tests)"). The model is untrusted but not
an adversary that knows this harness: the goal is that buggy, runaway or
reward-hacking code gets reward 0 and leaves the host unharmed, within a
wall-clock deadline.

How one run works: the parent writes a fresh working directory, puts the run in
its own cgroup(s) (`sandbox_host`), starts `python -I -c HARNESS` in a new
session and feeds it, on stdin, a random per-run nonce, the program, the test
segments and the question's code. The harness (trusted code, sandbox_child.py)
leaves the host's network, IPC and mount namespaces, applies limits, drops
privileges, loads the program as module `solution`, then runs each test segment
in a namespace of its own (fresh builtins per segment, the solution's functions
and classes but not its rebinding of builtins or stdlib modules, every stdlib
module dict and class restored before each segment, private copies of modules
for the tests; see `_Sealed` there), and reports every test outcome as
`<nonce> case i ok` on an inherited pipe whose number it took before any
untrusted code ran. A run passes only when the parent read `<nonce> done` and
every test case passed; exit status and stdout are never trusted, and a report
line with the nonce that the harness would not write fails the run.
`sys.exit(0)`, `os._exit(0)`, `exit()` at import time, printing fake results,
patching `print`/`sys.exit`/`os._exit`, builtins, `__builtins__`, stdlib
modules or `sys.modules`, or a module-level `def abs` therefore cannot fake a pass.

Which protection holds where (checked by tests/test_sandbox.py and test_sandbox_attacks.py):

| protection | root + Linux (CI, here) | non-root Linux | other OS |
|---|---|---|---|
| wall deadline, group kill, output cap | yes | yes | yes (no pidfd: polling) |
| RLIMIT_CPU / AS / FSIZE / CORE / NOFILE | yes | yes | where `resource` has them |
| own unprivileged uid per run (setuid) | yes | no | no |
| RLIMIT_NPROC (fork bombs) | exact: the uid is this run's alone | counted over all the user's processes | - |
| host files owned by others, parent process | protected | NOT protected: same uid | no |
| every process gone when the call returns | yes: cgroup.kill (v2), else kill(-1) as the run's uid | cgroup.kill in a delegated, writable cgroup v2; else session and descendants only | group only |
| one memory cap for the whole run | cgroup v2 memory.max, else v1 memory cgroup, else watchdog | watchdog | RLIMIT_AS per process |
| network | `unshare(CLONE_NEWNET)`: no interfaces | user + net namespace where allowed, else socket patch | socket patch |
| SysV / POSIX IPC private, shm capped | IPC namespace | user + IPC namespace where allowed | no |
| host mounts read-only; private /tmp, /var/tmp, /dev/shm, /run/lock | yes (mount namespace) | no: shared, world-writable | no |

Deliberate difference from "setuid nobody": each run gets its own random uid
(with gid = uid) from a high range rather than 65534. Then RLIMIT_NPROC counts
only this run's processes, one run cannot signal another concurrent run, and
`kill(-1, SIGKILL)` as that uid removes every leftover process without a race.
If that range is not mapped (a user namespace with a short uid_map), 65534 is
used and the uid sweep is skipped, since concurrent runs would share the uid.

The mount namespace (root only) also solves a practical problem: after the
drop, the interpreter's stdlib may not be traversable (a pyenv under a 0700
/root, as on this machine), so such a directory is covered by a tmpfs that
exposes only the interpreter's subtree (hiding the rest of /root too). The
harness imports, before the drop, the modules the tests and the question name
and the stdlib modules the program names (they must be loaded before the
solution to be restored after it); where mounts are refused, lazy imports
inside the stdlib may then fail.

What the sandbox does NOT stop (documented, not defended):
- Code that walks interpreter state (`sys._getframe`, `gc`, `ctypes`, trace
  functions, exception tracebacks) can reach the harness's locals: the nonce
  and report pipe (and so fake a pass) or the tests' namespace. So can objects
  whose `__eq__` always returns True, returned to an `assert f(x) == y`. We
  stop reward hacking by rebinding and patching, not code aimed at this harness.
- Mutable state inside modules (a cache, a registry such as
  `copy._deepcopy_dispatch`, a class attribute changed in place) is not
  restored, nor are C-level patches made through ctypes. The `sys` and
  `builtins` modules are shared with the tests (restored between segments,
  not copied: tests may set `sys.stdout` or `builtins.input`), so a patch a
  solution makes while a test runs is seen by that test's `sys.x` or
  `builtins.x` (not by its bare names such as `abs`, looked up in its own copy).
- The restore between segments also undoes what an honest test set up in an
  earlier segment on `sys`, `builtins` or a stdlib module (a mock set on one
  line, used by an assert on the next); a test that mocks and asserts in one
  segment (a HumanEval `check()`) is unaffected.
- Modules first imported after the solution ran (a test that imports one by
  a computed name) are not restored.
- World-readable host files stay readable (there is no chroot); /proc shows
  host processes (their environments are unreadable to another uid).
- Without a mount namespace (non-root) the workdir and /tmp are bounded only
  by RLIMIT_FSIZE per file and the deadline; the watchdog (no cgroup) samples
  every 50 ms, so a run can pass the cap briefly by what it allocates between
  two samples (each process is also held to the cap by RLIMIT_AS).
- The socket-patch fallback only replaces `socket.socket`; code using ctypes or
  `_socket` internals can still reach the network. Namespaces are the real fix.
- Unix-domain sockets are not cut by a network namespace; file permissions
  (e.g. the root-owned docker socket) are what protects them. The solution may
  create user namespaces of its own; inside them it stays in the run's cgroup
  and uid, so the memory cap and the final kill still reach it.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import secrets
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

from r1kit.rewards import sandbox_host as host
from r1kit.rewards.sandbox_host import TAIL_BYTES
from r1kit.rewards.sandbox_host import collect as _collect
from r1kit.rewards.sandbox_host import kill_group as _kill_group

UID_BASE, UID_SPAN = 3_000_000, 10_000_000
NOBODY = 65534
# Imports that do something when imported (open a browser, print, start Tk).
_NO_PREIMPORT = {
    "antigravity",
    "this",
    "__hello__",
    "__phello__",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "test",
    "pydoc_data",
}
# Codecs are looked up lazily (str.encode("latin-1") imports encodings.latin_1).
_BASE_PREIMPORT = ("encodings.ascii", "encodings.latin_1", "encodings.utf_16", "encodings.utf_32")
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# Set False to skip the mount namespace (tests use it to exercise the pre-import fallback).
PRIVATE_MOUNTS = True
# Set False to skip cgroups (tests use it to exercise the memory watchdog and the uid sweep).
USE_CGROUPS = True

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
    error: str = ""  # why it did not pass: timeout, memory, output_cap, syntax, too_deep, load_error, ...
    memory_capped: bool = False  # ended by the run's memory cap (cgroup OOM kill or the watchdog)
    memory: str = ""  # how the cap is enforced: cgroup-v2, cgroup-v1 or watchdog
    ipc: str = ""  # namespace, user-namespace or host

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
        out = subprocess.run(
            [python, "-I", "-S", "-c", PROBE, str(uid)],
            capture_output=True,
            text=True,
            timeout=30,
            env=_ENV,
            cwd="/",
            check=False,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {"network": "socket-patch", "drop": False}


def network_isolation_mode(python: str = sys.executable) -> str:
    """'namespace', 'user-namespace' or 'socket-patch' (weakest): what runs get on this host."""
    return _capabilities(python)["network"]


def privilege_drop_available(python: str = sys.executable) -> bool:
    """True when runs execute under their own unprivileged uid (we are root and setuid works)."""
    return bool(_capabilities(python)["drop"])


def memory_cap_mode() -> str:
    """'cgroup-v2', 'cgroup-v1' or 'watchdog': how one run's total memory is capped on this host."""
    memory = host.cgroup_plan()["memory"] if USE_CGROUPS else None
    return f"cgroup-{memory[0]}" if memory else "watchdog"


def describe_isolation(python: str = sys.executable) -> dict:
    """What runs get on this host, in the words of the table above (for troubleshooting):

    python -c "from r1kit.rewards.sandbox import describe_isolation as d; print(d())"
    """
    caps = _capabilities(python)
    per_run_uid = bool(caps["drop"]) and _uid_pool()[1]
    kill = (
        "cgroup.kill"
        if USE_CGROUPS and host.cgroup_plan()["kill"]
        else ("kill(-1) as the run's uid" if per_run_uid else "session and descendants")
    )
    return {
        "own_uid": bool(caps["drop"]),
        "network": caps["network"],
        "memory_cap": memory_cap_mode(),
        "final_kill": kill,
        "private_mounts": bool(caps["drop"]) and PRIVATE_MOUNTS,
        "ipc": "namespace" if os.geteuid() == 0 else "user-namespace where allowed, else host",
    }


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
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [(tests, True)]
    if not any(isinstance(node, ast.Assert) for node in body):
        return [(tests, True)]
    lines = tests.splitlines(keepends=True)
    segments: list[tuple[str, bool]] = []
    setup: list[str] = []
    for node in body:
        src = "".join(lines[node.lineno - 1 : node.end_lineno])
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


def leading_imports(segments: list[tuple[str, bool]]) -> str:
    """The import statements the tests open with (MBPP's `test_imports`), as source.

    MBPP's own harness runs `test_imports + solution + tests` as one program, so reference
    solutions may use `math` without importing it; these lines also run in the solution's
    namespace, before the solution (trusted code: the tests' own imports).
    """
    lines: list[str] = []
    for src, is_case in segments:
        if is_case:
            break
        try:
            body = ast.parse(src).body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            break
        src_lines = src.splitlines(keepends=True)
        for node in body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                return "".join(lines)
            lines.append("".join(src_lines[node.lineno - 1 : node.end_lineno]))
    return "".join(lines)


def _test_names(segments: list[tuple[str, bool]]) -> tuple[list[str], list[str]]:
    """(plain names the trusted tests call, stdlib modules they use as `name.attr`).

    The function under test is among the first; the second are imported before the solution runs,
    so that a test relying on the solution's `import math` gets the real module, not the solution's
    `class math`.
    """
    called: set[str] = set()
    modules: set[str] = set()
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    for src, _ in segments:
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.add(node.func.id)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in stdlib
            ):
                modules.add(node.value.id)
    return sorted(called), sorted(modules - _NO_PREIMPORT)


# Import statements, found line by line in linear time (the program is untrusted: no ast.parse here,
# a deeply nested expression makes the parser raise MemoryError or RecursionError in this process).
_IMPORT_RE = re.compile(r"^[ \t]*import[ \t]+([\w. \t,]+)", re.MULTILINE)
_FROM_RE = re.compile(r"^[ \t]*from[ \t]+([\w.]+)[ \t]+import[ \t]+\(?([\w \t,]*)", re.MULTILINE)
_DYNAMIC_RE = re.compile(r"(?:__import__|import_module)\([ \t]*['\"]([\w.]+)['\"]")


def _imported_names(src: str) -> set[str]:
    names: set[str] = set()
    for m in _IMPORT_RE.finditer(src):
        names.update(part.split()[0] for part in m.group(1).split(",") if part.split())
    for m in _FROM_RE.finditer(src):
        module = m.group(1)
        if module.startswith("."):
            continue
        names.add(module)
        names.update(f"{module}.{part.split()[0]}" for part in m.group(2).split(",") if part.split())
    names.update(_DYNAMIC_RE.findall(src))
    return {n for n in names if all(p.isidentifier() for p in n.split("."))}


def _preimports(program: str, trusted: list[str]) -> list[str]:
    """Modules the harness imports before the solution runs, so that they can be restored after it.

    Every module the tests and the question name (trusted code), and the stdlib modules the program
    names; also what a root run needs where the sandbox uid cannot read the stdlib (no mounts).
    """
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    keep = {n for n in _imported_names(program) if n.split(".")[0] in stdlib}
    for src in trusted:
        keep.update(_imported_names(src))
    keep = {n for n in keep if n.split(".")[0] not in _NO_PREIMPORT}
    keep.update(_BASE_PREIMPORT)
    if keep & {"socket", "urllib", "http", "ssl"}:
        keep.add("encodings.idna")  # host names are encoded lazily
    if keep & {"datetime", "time"}:
        keep.add("_strptime")  # strptime imports it lazily
    return sorted(keep)


def run_sandboxed(
    program: str,
    tests: str | list[str] | None = None,
    *,
    timeout_s: float = 10,
    cpu_s: int = 10,
    memory_mb: int = 1024,
    max_procs: int = 64,
    max_output_bytes: int = 1_000_000,
    max_file_mb: int = 64,
    python: str = sys.executable,
    preamble: str | None = None,
    entry_point: str | None = None,
) -> SandboxResult:
    """Run `program` then the trusted `tests` (see `split_tests`) in a fresh sandbox.

    `passed` is True only when the harness reported, with this run's nonce, that
    the program loaded and every test case passed (with no tests: that the
    program ran to the end without an exception).

    Limits: `timeout_s` wall clock for the whole run (then every process of it
    is killed); `cpu_s` CPU seconds per process (RLIMIT_CPU); `memory_mb` both
    the address space of each process (RLIMIT_AS) and the memory of the whole
    run (a cgroup or the watchdog, see `sandbox_host`); `max_procs` processes
    and threads of the run (RLIMIT_NPROC); `max_output_bytes` stdout + stderr +
    report bytes before the run is killed; `max_file_mb` per file
    (RLIMIT_FSIZE) and the size of each private tmpfs. `python` must be the
    same Python version as this one (the harness source is passed with -c).

    `preamble` is trusted code the tests run on top of (a HumanEval prompt:
    its imports and helpers such as `poly`, so a solution cannot redefine what
    the tests rely on); `entry_point` names the function under test. The import
    statements the tests open with (MBPP's `test_imports`) also run in the
    solution's namespace before the solution (`leading_imports`).

    Every resource of the run (work folder, descriptors, cgroups, uid) is
    released, and every process of the run is gone, when this returns or raises.
    """
    segments = split_tests(tests)
    n_tests = sum(1 for _, is_case in segments if is_case)
    caps = _capabilities(python)
    trusted = [s for s, _ in segments] + ([preamble] if preamble else [])
    called, used_modules = _test_names(segments)
    cfg = {
        "program": program,
        "segments": segments,
        "preamble": preamble or "",
        "entry_point": entry_point or "",
        "imports": leading_imports(segments),
        "called": called,
        "net": caps["network"] != "socket-patch",
        "mounts": PRIVATE_MOUNTS,
        "preimport": sorted(set(_preimports(program, trusted)) | set(used_modules)),
        "uid": None,
        "limits": {
            "cpu": int(cpu_s),
            "as": int(memory_mb) << 20,
            "fsize": int(max_file_mb) << 20,
            "nofile": 256,
            "nproc": int(max_procs),
        },
    }
    nonce = secrets.token_hex(16)
    run = _Run(python, caps, int(memory_mb) << 20)
    try:
        run.start(cfg, nonce)
        t0 = run.t0
        streams, timed_out, capped, over_memory = _collect(
            run.proc, run.rfd, t0 + timeout_s, max_output_bytes, run.watchdog
        )
        wall = time.monotonic() - t0
        run.end_processes()
        oom = run.group.oom_killed()
        returncode = run.proc.returncode
    finally:
        run.close()
    report = _parse_report(streams[run.rfd], nonce, n_tests)
    n_passed = len(report["cases"])
    memory_capped = over_memory or oom
    passed = (
        report["done"]
        and report["loaded"]
        and n_passed == n_tests
        and not report["tampered"]
        and not memory_capped
    )
    return SandboxResult(
        passed=passed,
        returncode=returncode,
        timed_out=timed_out,
        stdout_tail=_tail(streams[run.stdout_fd]),
        stderr_tail=_tail(streams[run.stderr_fd]),
        wall_s=wall,
        n_passed=0 if report["tampered"] else n_passed,
        n_tests=n_tests,
        output_capped=capped,
        network=report["network"] or caps["network"],
        filesystem=report["fs"],
        loaded=report["loaded"],
        error="" if passed else _reason(report, timed_out, capped, memory_capped, returncode),
        memory_capped=memory_capped,
        memory=run.group.memory_mode,
        ipc=report["ipc"],
    )


def _reason(report: dict, timed_out: bool, capped: bool, memory_capped: bool, returncode: int | None) -> str:
    if report["tampered"]:
        return "report_tampered"
    if memory_capped:
        return "memory"
    if capped:
        return "output_cap"
    if timed_out or (returncode == -signal.SIGXCPU and not report["done"]):
        return "timeout"  # the wall deadline, or RLIMIT_CPU
    if report["compile"]:
        return "too_deep" if report["compile"] in ("RecursionError", "MemoryError") else "syntax"
    if report["loadfail"] == "MemoryError":
        return "memory"
    if report["loadfail"]:
        return "load_error"
    if not report["done"]:
        return "crashed"
    return "failed"


class _Run:
    """The resources of one run, acquired in `start` and all released by `close`, on every path."""

    def __init__(self, python: str, caps: dict, memory_bytes: int):
        self.python, self.caps, self.memory_bytes = python, caps, memory_bytes
        self.uid: int | None = None
        self.per_run_uid = False
        self.workdir: str | None = None
        self.rfd = self.wfd = -1
        self.stdout_fd = self.stderr_fd = -1
        self.group = host.RunGroup("", 0, use=False)
        self.proc: subprocess.Popen | None = None
        self.watchdog: host.MemoryWatchdog | None = None
        self.t0 = time.monotonic()
        self.ended = False

    def start(self, cfg: dict, nonce: str) -> None:
        if self.caps["drop"]:
            self.uid = _take_uid()
            self.per_run_uid = self.uid != NOBODY
        cfg["uid"] = self.uid
        self.workdir = tempfile.mkdtemp(prefix="r1kit-sbx-")
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        self.rfd, self.wfd = os.pipe()
        self.group = host.RunGroup(f"run-{nonce[:12]}", self.memory_bytes, use=USE_CGROUPS)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.python, "-I", "-c", HARNESS, str(self.wfd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(self.wfd,),
            cwd=self.workdir,
            env=dict(_ENV, HOME=self.workdir, TMPDIR=self.workdir),
            start_new_session=True,
        )
        self.stdout_fd, self.stderr_fd = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        os.close(self.wfd)
        self.wfd = -1
        # The harness reads its configuration before it does anything: it is in the cgroups before
        # any untrusted code runs, and so is everything it starts.
        self.group.add(self.proc.pid)
        if self.group.memory is None and os.path.isdir("/proc"):
            self.watchdog = host.MemoryWatchdog(self.memory_bytes, self._pids)
        try:
            self.proc.stdin.write(nonce.encode() + b"\n" + json.dumps(cfg).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def _pids(self) -> list[int]:
        pids = self.group.pids()
        if pids is not None:
            return pids
        if self.per_run_uid:
            return host.uid_pids(self.uid)
        return host.session_pids(self.proc.pid) if self.proc is not None else []

    def end_processes(self) -> None:
        """Kill the harness, then every other process of the run, and wait until they are gone."""
        proc = self.proc
        if proc is None or self.ended:
            return
        self.ended = True
        _kill_group(proc)
        proc.wait()
        if self.group.kill():
            host.wait_until(lambda: not self.group.pids())
        elif self.per_run_uid:
            host.sweep_uid(self.python, self.uid)
            if self.group.pids() is not None:
                host.wait_until(lambda: not self.group.pids())
            else:
                host.wait_until(lambda: not host.uid_pids(self.uid))
        else:
            host.wait_until(lambda: not _kill_all(host.session_pids(proc.pid)), timeout_s=2.0)

    def close(self) -> None:
        steps = [
            self.end_processes,
            self.group.remove,
            self._close_fds,
            lambda: self.workdir and shutil.rmtree(self.workdir, ignore_errors=True),
            self._release_uid,
        ]
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001, S110  one failed step must not keep the others from running
                pass

    def _close_fds(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                os.close(fd)
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def _release_uid(self) -> None:
        if self.per_run_uid:
            with _uid_lock:
                _active_uids.discard(self.uid)
            self.per_run_uid = False


def _kill_all(pids: list[int]) -> list[int]:
    host.kill_pids(pids)
    return pids


_REPORT_WORDS = {"net", "fs", "ipc", "compile", "loadfail"}


def _parse_report(raw: bytearray, nonce: str, n_tests: int) -> dict:
    """The harness's report. The program can write to the pipe (and, walking the interpreter, learn
    the nonce): a line with the nonce that the harness would not write marks the run as tampered."""
    report = {
        "done": False,
        "loaded": False,
        "cases": set(),
        "network": "",
        "fs": "",
        "ipc": "",
        "compile": "",
        "loadfail": "",
        "tampered": False,
    }
    prefix = nonce + " "
    for line in raw.decode("utf-8", "replace").split("\n"):
        if not line.startswith(prefix):
            continue
        kind, *args = line[len(prefix) :].split(" ")
        if report["done"]:
            report["tampered"] = True  # the harness writes nothing after "done"
        elif (
            kind == "case"
            and len(args) == 2
            and args[1] == "1"
            and args[0].isascii()
            and args[0].isdigit()
            and len(args[0]) < 10
            and int(args[0]) < n_tests
            and int(args[0]) not in report["cases"]
        ):
            report["cases"].add(int(args[0]))
        elif kind in ("loaded", "done") and not args and not report[kind]:
            report[kind] = True
        elif (
            kind in _REPORT_WORDS
            and len(args) == 1
            and args[0].isascii()
            and args[0].replace("-", "_").isidentifier()
        ):
            report["network" if kind == "net" else kind] = args[0]
        else:
            report["tampered"] = True
    return report


def _tail(buf: bytearray) -> str:
    return bytes(buf[-TAIL_BYTES:]).decode("utf-8", "replace")


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
