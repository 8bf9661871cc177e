"""The host side of the code sandbox: one memory cap per run, and no process left behind.

`r1kit.rewards.sandbox` starts each run in a harness process; everything here runs in the
parent (the trainer), which is trusted and, on a CI machine, root. `collect` reads the run's
output and report until the harness exits, its deadline, its output cap or its memory cap.

Memory. A run is one cgroup where the host lets us make one: cgroup v2 with the memory
controller (memory.max, no swap), else the cgroup v1 memory controller under r1kit's own
memory cgroup (memory.limit_in_bytes, also memsw), so that the harness, every child, their
memfds, SysV/POSIX shared memory and tmpfs pages (the run's own /tmp, or a tmpfs mounted in a
user namespace the solution made) are charged to one limit and the kernel's OOM killer ends the
run at the cap. Where neither is available, `MemoryWatchdog` samples the run every
`WATCH_PERIOD_S` and kills it once the sum of its processes' PSS, the memfds and deleted shared
memory files they hold, and the tmpfs mounts only they can see passes the cap.

Processes. Every process of a run is gone when `run_sandboxed` returns: with a cgroup v2
group, `cgroup.kill` (the kernel kills the group atomically, forks included) and a wait until
the group is empty; otherwise, with a per-run uid, `kill(-1, SIGKILL)` sent *as that uid* from a
fresh process once the harness is dead (a fork that races the signal fails, because the kernel
checks for a pending fatal signal before it adds the child to the task list), then a wait until
no process has the uid. Without either (non-root, no delegated cgroup) the harness's session and
descendants are killed until none is left, which misses processes that left both.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from functools import lru_cache
from pathlib import Path

WATCH_PERIOD_S = 0.05
TAIL_BYTES = 4000  # of stdout and stderr kept per run
GROUP_DIR = "r1kit-sandbox"

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


def _mounts() -> list[tuple[str, str, str, list[str]]]:
    """(mount point, root in the filesystem, fs type, super options) of this namespace's mounts."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) >= 5 and len(tail) >= 3:
                    out.append((_unescape(fields[4]), _unescape(fields[3]), tail[0], tail[2].split(",")))
    except OSError:
        pass
    return out


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def _own_cgroup(key: str) -> str | None:
    """This process's cgroup path in the hierarchy `key` ("" for v2, else a v1 controller name)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if (key == "" and controllers == "") or key in controllers.split(","):
                return path
    except (OSError, ValueError):
        pass
    return None


def _join(mount: str, mount_root: str, path: str) -> Path:
    if mount_root != "/" and path.startswith(mount_root):
        path = path[len(mount_root) :]
    return Path(mount) / path.lstrip("/")


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _try_group(parent: Path, memory_file: str | None) -> bool:
    """Whether runs can be cgroups under `parent` (made if missing), with `memory_file` settable."""
    probe = parent / f"probe-{os.getpid()}-{time.monotonic_ns()}"
    try:
        parent.mkdir(exist_ok=True)
        probe.mkdir()
    except OSError:
        return False
    try:
        if memory_file:
            _write(probe / memory_file, str(64 << 20))
        return memory_file is not None or (probe / "cgroup.kill").exists()
    except OSError:
        return False
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


@lru_cache(maxsize=1)
def cgroup_plan() -> dict:
    """Where this host lets runs be cgroups: {"kill": v2 parent or None, "memory": (kind, parent) or None}.

    Probed once by making and removing a cgroup. v2 groups go under r1kit's own cgroup (only
    core files there: enough for cgroup.kill) or, for memory, under `r1kit-sandbox` at the
    hierarchy's root when the root already delegates the memory controller. v1 memory groups go
    under r1kit's own memory cgroup, so that the host's limit on r1kit still covers them.
    """
    plan: dict = {"kill": None, "memory": None}
    mounts = _mounts()
    v2 = next(((m, r) for m, r, t, _ in mounts if t == "cgroup2"), None)
    if v2:
        own = _own_cgroup("")
        root = Path(v2[0])
        try:
            root_delegates = "memory" in (root / "cgroup.subtree_control").read_text().split()
        except OSError:
            root_delegates = False
        if root_delegates and _enable(root / GROUP_DIR) and _try_group(root / GROUP_DIR, "memory.max"):
            plan["memory"] = ("v2", root / GROUP_DIR)
            plan["kill"] = root / GROUP_DIR
        elif own is not None and _try_group(_join(*v2, own) / GROUP_DIR, None):
            plan["kill"] = _join(*v2, own) / GROUP_DIR
    if plan["memory"] is None:
        v1 = next(((m, r) for m, r, t, opts in mounts if t == "cgroup" and "memory" in opts), None)
        own = _own_cgroup("memory")
        if v1 and own is not None and _try_group(_join(*v1, own) / GROUP_DIR, "memory.limit_in_bytes"):
            plan["memory"] = ("v1", _join(*v1, own) / GROUP_DIR)
    for parent in {plan["kill"], plan["memory"] and plan["memory"][1]} - {None}:
        _remove_stale(parent)
    return plan


def _remove_stale(parent: Path) -> None:
    """Remove run groups left empty by an r1kit process that was killed mid-run (rmdir refuses populated ones)."""
    try:
        children = [c for c in parent.iterdir() if c.is_dir() and c.name.startswith("run-")]
    except OSError:
        return
    for child in children:
        try:
            if not (child / "cgroup.procs").read_text().strip():
                child.rmdir()
        except OSError:
            pass


def _enable(group: Path) -> bool:
    try:
        group.mkdir(exist_ok=True)
        controllers = (group / "cgroup.subtree_control").read_text().split()
        if "memory" not in controllers:
            _write(group / "cgroup.subtree_control", "+memory")
        return True
    except OSError:
        return False


class RunGroup:
    """The cgroups of one run (a v2 group for kill and maybe memory, a v1 memory group), or none."""

    def __init__(self, name: str, memory_bytes: int, use: bool = True):
        plan = cgroup_plan() if use else {"kill": None, "memory": None}
        self.dirs: list[Path] = []
        self.kill_dir: Path | None = None
        self.memory: tuple[str, Path] | None = None
        try:
            if plan["kill"] is not None:
                d = plan["kill"] / name
                d.mkdir()
                self.dirs.append(d)
                self.kill_dir = d
            if plan["memory"] is not None:
                kind, parent = plan["memory"]
                d = parent / name
                if kind == "v2":
                    _write(d / "memory.max", str(memory_bytes))
                    for extra in ("memory.swap.max", "memory.zswap.max"):
                        if (d / extra).exists():
                            _write(d / extra, "0")
                else:
                    d.mkdir()
                    self.dirs.append(d)
                    _write(d / "memory.limit_in_bytes", str(memory_bytes))
                    if (d / "memory.memsw.limit_in_bytes").exists():
                        _write(d / "memory.memsw.limit_in_bytes", str(memory_bytes))
                self.memory = (kind, d)
        except OSError:
            self.remove()
            raise

    @property
    def memory_mode(self) -> str:
        return f"cgroup-{self.memory[0]}" if self.memory else "watchdog"

    def add(self, pid: int) -> None:
        for d in self.dirs:
            _write(d / "cgroup.procs", str(pid))

    def pids(self) -> list[int] | None:
        """The run's processes, when a group holds them all; None without a group."""
        d = self.kill_dir or (self.memory[1] if self.memory else None)
        if d is None:
            return None
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self) -> bool:
        """Kill the whole group at once (cgroup v2); False when this host has no such group."""
        if self.kill_dir is None:
            return False
        try:
            _write(self.kill_dir / "cgroup.kill", "1")
            return True
        except OSError:
            return False

    def oom_killed(self) -> bool:
        if self.memory is None:
            return False
        kind, d = self.memory
        try:
            text = (d / ("memory.events" if kind == "v2" else "memory.oom_control")).read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", 0)) > 0 or (kind == "v1" and int(counts.get("under_oom", 0)) > 0)

    def remove(self) -> None:
        for d in reversed(self.dirs):
            for _ in range(200):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)
        self.dirs = []


# ---- reading a run, and ending it ----


def collect(proc: subprocess.Popen, rfd: int, deadline: float, cap: int, watchdog=None):
    """Read stdout, stderr and the report pipe until the harness exits, the deadline, the output cap,
    or (with a watchdog) the memory cap. Returns (buffers by fd, timed out, output capped, over memory)."""
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
    timed_out = capped = exited = over_memory = False
    try:
        while not capped:
            if exited:  # drain what the harness wrote before exiting, then stop
                ready = [fd for fd in fds if fd in sel.get_map()]
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                wait = remaining if pidfd >= 0 else min(remaining, 0.05)
                if watchdog is not None:
                    wait = min(wait, WATCH_PERIOD_S)
                ready = [k.fd for k, _ in sel.select(wait)]
                if watchdog is not None and watchdog.over():
                    over_memory = True
                    break
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
    return bufs, timed_out, capped, over_memory


def _has_exited(proc: subprocess.Popen) -> bool:
    # WNOWAIT leaves the zombie in place, so its pid (= group id) cannot be reused before killpg.
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---- finding and killing a run's processes without a cgroup ----


def _proc_entries() -> list[str]:
    try:
        return [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:  # no /proc (not Linux): nothing to find this way
        return []


def uid_pids(uid: int) -> list[int]:
    """Live processes (not zombies) whose real uid is `uid`."""
    found = []
    for entry in _proc_entries():
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:
            continue
        state = uid_line = ""
        for line in status.splitlines():
            if line.startswith("State:"):
                state = line.split()[1]
            elif line.startswith("Uid:"):
                uid_line = line
                break
        if uid_line and int(uid_line.split()[1]) == uid and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def session_pids(leader: int) -> list[int]:
    """Processes in `leader`'s session or descended from it (the non-root fallback)."""
    parents: dict[int, int] = {}
    members = set()
    for entry in _proc_entries():
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] in ("Z", "X"):
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        if int(fields[3]) == leader or pid == leader:
            members.add(pid)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in members and pid not in members:
                members.add(pid)
                changed = True
    return sorted(members)


def sweep_uid(python: str, uid: int) -> None:
    """kill(-1, SIGKILL) as `uid` from a fresh process: every process of that uid, atomically."""
    try:
        subprocess.run(
            [python, "-I", "-S", "-c", KILLER, str(uid)],
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            timeout=10,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        pass


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_until(empty, timeout_s: float = 5.0) -> bool:
    """Poll `empty()` (short sleeps, growing) until it is true or the time is up."""
    deadline = time.monotonic() + timeout_s
    pause = 0.0005
    while True:
        if empty():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


# ---- the accounting watchdog (hosts without a memory cgroup) ----


class MemoryWatchdog:
    """Sum of a run's memory, sampled: PSS of its processes + memfds and deleted shm files they hold
    + tmpfs mounts that only the run sees (its private /tmp, or one it mounted in a user namespace).

    PSS shares pages between the processes that map them, so three children of one parent are
    counted once each for their own pages and proportionally for shared ones. A memfd that is both
    mapped and held open is counted twice (on the safe side). Between two samples a run can pass
    the cap by what it allocates in WATCH_PERIOD_S; each process is also held to the cap by RLIMIT_AS.
    """

    def __init__(self, cap_bytes: int, pids):
        self.cap = cap_bytes
        self.pids = pids
        self.host_devs = {_dev_of(line) for line in _read_lines("/proc/self/mountinfo")}
        self.next_at = 0.0
        self.peak = 0

    def over(self) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            return False
        self.next_at = now + WATCH_PERIOD_S
        used = self.usage()
        self.peak = max(self.peak, used)
        return used > self.cap

    def usage(self) -> int:
        total = 0
        seen_files: set[tuple[int, int]] = set()
        seen_devs: set[str] = set()
        for pid in self.pids() or ():
            total += _pss(pid)
            total += _held_shm(pid, seen_files)
            for line in _read_lines(f"/proc/{pid}/mountinfo"):
                parts = line.split(" - ")
                if len(parts) != 2 or not parts[1].startswith("tmpfs"):
                    continue
                dev = _dev_of(line)
                if dev in self.host_devs or dev in seen_devs:
                    continue
                seen_devs.add(dev)
                try:
                    st = os.statvfs(f"/proc/{pid}/root{_unescape(line.split()[4])}")
                    total += (st.f_blocks - st.f_bfree) * st.f_frsize
                except OSError:
                    pass
        return total


def _read_lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def _dev_of(mountinfo_line: str) -> str:
    fields = mountinfo_line.split()
    return fields[2] if len(fields) > 2 else ""


def _pss(pid: int) -> int:
    for line in _read_lines(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _held_shm(pid: int, seen: set[tuple[int, int]]) -> int:
    """Bytes of memfds and deleted shared-memory files that `pid` holds open (each file once)."""
    total = 0
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return 0
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if not (
            target.startswith("/memfd:") or (target.startswith("/dev/shm/") and target.endswith("(deleted)"))
        ):
            continue
        try:
            st = os.stat(f"{fd_dir}/{fd}")
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            total += st.st_blocks * 512
    return total
