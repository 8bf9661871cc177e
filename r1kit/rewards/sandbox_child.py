"""The harness run inside the sandboxed child interpreter (`python -I -c <this file's text>`).

It is read as text by r1kit/rewards/sandbox.py and never imported. It runs as root
(when the parent is root) until it drops privileges: everything it needs from the
interpreter is bound to locals before the first line of untrusted code runs.

Order of work: read the run's configuration from stdin; leave the host's network,
IPC and mount namespaces (as root; a user namespace otherwise); make every host
mount read-only and give the run fresh tmpfs folders; import the modules the tests
and the program name; set the limits; drop to the run's uid; load the solution in
its own module; then run each test segment in a separate namespace (see `_Sealed`).

It catches BaseException wherever untrusted code runs (a SystemExit or KeyboardInterrupt raised by
the solution is just a failed test) and runs code with exec by design.
"""

# ruff: noqa: BLE001, S102, S110, I001
import os, sys


def _main():
    import builtins, ctypes, json, linecache, resource, traceback, types

    write, exit_, kill, exc_info, fmt = os.write, os._exit, os.kill, sys.exc_info, traceback.format_exception
    compile_, exec_, bytes_ = compile, exec, bytes
    rfd = int(sys.argv[1])
    chunks = []
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    raw = b"".join(chunks)
    cut = raw.index(b"\n")
    nonce = bytearray(raw[:cut])
    cfg = json.loads(raw[cut + 1 :])
    del raw, chunks
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def report(msg):
        try:
            write(rfd, bytes_(nonce) + b" " + msg + b"\n")
        except OSError:
            pass

    def complain():
        try:
            write(2, "".join(fmt(*exc_info())[-6:])[-2000:].encode("utf-8", "replace"))
        except BaseException:
            pass

    root, uid, lim = os.geteuid() == 0, cfg["uid"], cfg["limits"]
    libc = ctypes.CDLL(None, use_errno=True)
    net, ipc = _namespaces(libc, root, cfg["net"])
    if net == "socket-patch":
        import socket, _socket

        class _NoSocket(_socket.socket):
            def __init__(self, *args, **kwargs):
                raise PermissionError(13, "network access is disabled in the r1kit sandbox")

        socket.socket = socket.SocketType = _socket.socket = _NoSocket
    if ipc != "host":
        _cap_ipc(lim["as"])  # a user namespace's IPC namespace may refuse: then the watchdog is all there is
    fs = "host"
    if root and uid is not None and cfg["mounts"]:
        try:
            fs = _private_mounts(libc, uid, lim["fsize"])
        except OSError:
            complain()
    for name in cfg["preimport"]:
        try:
            __import__(name)
        except BaseException:
            pass
    R = resource
    nproc = lim["nproc"]
    if not root and os.path.isdir("/proc"):  # NPROC counts all of this uid's tasks: allow those already there
        me = str(os.getuid())
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/" + pid + "/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                if fields["Uid"].split()[0] == me:
                    nproc += int(fields["Threads"])
            except (OSError, KeyError, ValueError):
                pass
    for res, soft, hard in (
        (R.RLIMIT_CORE, 0, 0),
        (R.RLIMIT_CPU, lim["cpu"], lim["cpu"] + 1),
        (R.RLIMIT_FSIZE, lim["fsize"], lim["fsize"]),
        (R.RLIMIT_NOFILE, lim["nofile"], lim["nofile"]),
        (R.RLIMIT_NPROC, nproc, nproc),
        (R.RLIMIT_AS, lim["as"], lim["as"]),
    ):
        cur = R.getrlimit(res)[1]
        if cur != R.RLIM_INFINITY:
            soft, hard = min(soft, cur), min(hard, cur)
        try:
            R.setrlimit(res, (soft, hard))
        except (ValueError, OSError):
            if sys.platform.startswith("linux"):
                raise  # fail closed where every limit is supported

    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid or os.getegid() != uid:
            exit_(3)
    if hasattr(libc, "prctl"):
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: setuid binaries grant nothing

    program = cfg["program"]
    try:
        code = compile_(program, "<solution>", "exec")
        linecache.cache["<solution>"] = (len(program), None, program.splitlines(True), "<solution>")
    except BaseException as e:
        complain()
        report(b"compile " + type(e).__name__.encode("ascii", "replace"))
        code = None

    def compiled(src, name):
        try:
            return compile_(src, name, "exec")
        except BaseException:
            complain()
            return None

    tests = [(compiled(src, f"<test {i}>"), is_case) for i, (src, is_case) in enumerate(cfg["segments"])]
    preamble = compiled(cfg["preamble"], "<question>") if cfg["preamble"] else None
    imports = compiled(cfg["imports"], "<test imports>") if cfg.get("imports") else None
    entry, called = cfg["entry_point"], cfg["called"]
    del cfg, program
    sealed = _Sealed(builtins, types)
    mod = types.ModuleType("solution")
    sys.modules["solution"] = mod
    ns = mod.__dict__
    report(b"net " + net.encode())
    report(b"ipc " + ipc.encode())
    report(b"fs " + fs.encode())

    loaded = False
    if code is not None:
        try:
            if imports is not None:
                exec_(imports, ns)  # MBPP: test_imports + solution + tests is one program upstream
            exec_(code, ns)
            loaded = True
        except BaseException as e:
            sealed.restore()  # first: what follows uses builtins the solution may have replaced
            complain()
            report(b"loadfail " + type(e).__name__.encode("ascii", "replace"))
    if loaded:
        report(b"loaded")
    broken, case = not loaded, 0
    tns = sealed.test_namespace(ns, preamble, entry, called) if loaded else {}
    for i, (obj, is_case) in enumerate(tests):
        if i and not broken:  # test_namespace() restored before the first one
            sealed.restore()
        ok = False
        if not broken and obj is not None:
            tns["__builtins__"] = sealed.test_builtins()
            try:
                exec_(obj, tns)
                ok = True
            except BaseException:
                complain()
        if is_case:
            if ok:
                report(b"case %d 1" % case)
            case += 1
        elif not ok:
            broken = True
    report(b"done")
    for stream in sealed.streams:
        try:
            stream.flush()
        except BaseException:
            pass
    if uid is not None:
        try:
            kill(-1, 9)  # as this run's uid: every process it left behind, never ourselves
        except OSError:
            pass
    exit_(0)


class _Sealed:
    """The world the tests see, out of the solution's reach.

    Taken before the solution runs: the builtins, `sys.modules`, the dict of every loaded module
    (stdlib and whatever the tests and the question import, which were imported first for that
    reason) and the dicts of the classes those modules define in Python. `restore()` puts all of
    that back before every test segment, so `math.isclose = ...`, `sys.modules['math'] = ...`,
    `builtins.abs = ...` or `collections.Counter.__eq__ = ...` done while loading or by an earlier
    test's call are undone.

    The tests run in their own globals, never the solution's: a fresh copy of the builtins per
    segment (so a module-level `def abs`, `set = lambda *a: 0` or `__builtins__ = {...}` in the
    solution changes nothing for them) whose `__import__` hands out private copies of the modules
    (so a solution function that patches `math` while the tests run, or a thread it left behind,
    does not reach the `math` the tests use). `sys` and `builtins` are shared, not copied: tests
    legitimately set `sys.stdout` or `builtins.input` for the solution to see.
    """

    def __init__(self, builtins, types):
        self.builtins, self.module_type = builtins, types.ModuleType
        self.bdict = builtins.__dict__
        self.pristine = dict(self.bdict)
        self.settrace, self.setprofile = sys.settrace, sys.setprofile
        self.streams = (sys.stdout, sys.stderr)
        self.modules = sys.modules
        self.mods = dict(sys.modules)
        self.lists = [(lst, list(lst)) for lst in (sys.meta_path, sys.path_hooks, sys.path)]
        self.dicts, self.classes = [], []
        self.shared = (sys, builtins)
        import itertools, operator

        self.map, self.is_, self.repeat, self.missing = map, operator.is_, itertools.repeat, object()
        immutable = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: C types whose attributes cannot be set anyway
        for name, m in self.mods.items():
            d = getattr(m, "__dict__", None)
            if not isinstance(m, self.module_type) or not isinstance(d, dict):
                continue
            self.dicts.append((d, tuple(d), tuple(d.values())))
            for value in list(d.values()):
                if (
                    isinstance(value, type)
                    and not value.__flags__ & immutable
                    and value.__dict__.get("__module__") == name
                ):
                    self.classes.append((value, tuple(value.__dict__), tuple(value.__dict__.values())))
        self.snap = {id(d): (keys, values) for d, keys, values in self.dicts}
        self.copies = {}
        real_import = self.pristine["__import__"]
        private = self.private

        def test_import(name, globals=None, locals=None, fromlist=(), level=0):
            return private(real_import(name, globals, locals, fromlist, level))

        self.tb = dict(self.pristine, __import__=test_import)

    def restore(self):
        self.settrace(None)
        self.setprofile(None)
        bdict = self.bdict
        bdict.clear()
        bdict.update(self.pristine)  # first: the rest of this method uses builtins
        modules = self.modules
        for name, m in self.mods.items():
            if modules.get(name) is not m:
                modules[name] = m
        for lst, items in self.lists:
            if len(lst) != len(items) or any(a is not b for a, b in zip(lst, items)):
                lst[:] = items
        same, missing = self.same, self.missing
        for d, keys, values in self.dicts:
            if not same(d, keys, values):
                snap = dict(zip(keys, values))
                for k in [k for k in d if k not in snap]:
                    del d[k]
                d.update(snap)
        for cls, keys, values in self.classes:
            now = cls.__dict__
            if not same(now, keys, values):
                snap = dict(zip(keys, values))
                for k in [k for k in now if k not in snap]:
                    type.__delattr__(cls, k)
                for k, v in snap.items():
                    if now.get(k, missing) is not v:
                        type.__setattr__(cls, k, v)

    def same(self, d, keys, values):
        # Identity, never ==: an object whose __eq__ says True must not pass for the original. In C (map,
        # operator.is_): this runs before every segment over ~8k entries.
        return len(d) == len(keys) and all(
            self.map(self.is_, self.map(d.get, keys, self.repeat(self.missing)), values)
        )

    def private(self, m):
        """The tests' own copy of a module loaded before the solution ran (others as they are)."""
        if not isinstance(m, self.module_type) or any(m is s for s in self.shared):
            return m
        snap = self.snap.get(id(m.__dict__))
        if snap is None or self.mods.get(m.__name__) is not m:
            return m
        copy = self.copies.get(id(m))
        if copy is None:
            copy = self.copies[id(m)] = self.module_type(m.__name__)
            copy.__dict__.update(zip(*snap))
        return copy

    def test_builtins(self):
        return dict(self.tb)

    def test_namespace(self, ns, preamble, entry, called):
        """Globals for the tests: the question's own code, then the solution's functions and classes.

        Names the solution binds are passed on except: dunders; a name the question (trusted)
        defines, unless it is the entry point; a builtin's name, unless it is the function under
        test (the entry point, or for MBPP-style tests without one, the only solution name the tests
        call: MBPP task 126's function is `sum`); and stdlib modules, passed as the tests' private
        copy of the module of that name, whatever object the solution bound to it.
        """
        self.restore()
        tns = {"__name__": "__main__", "__builtins__": self.test_builtins()}
        if preamble is not None:
            try:
                exec(preamble, tns)
            except BaseException:
                pass
        trusted = set(tns)
        if not entry:
            callers = [n for n in called if n in ns and not (n.startswith("__") and n.endswith("__"))]
            entry = callers[0] if len(callers) == 1 else None
        mods = self.mods
        for name in list(ns):
            if name.startswith("__") and name.endswith("__"):
                continue
            value = ns[name]
            if name == entry:
                tns[name] = self.private(value)
            elif name in trusted:
                continue
            elif isinstance(value, self.module_type):
                real = mods.get(getattr(value, "__name__", None))
                tns[name] = self.private(real if isinstance(real, self.module_type) else value)
            elif name in self.pristine:
                continue
            elif isinstance(mods.get(name), self.module_type):
                tns[name] = self.private(mods[name])
            else:
                tns[name] = value
        return tns


def _namespaces(libc, root, want_net):
    """Leave the host's network and IPC namespaces: (network mode, ipc mode) reached."""
    NEWNET, NEWIPC, NEWUSER = 0x40000000, 0x08000000, 0x10000000
    net = ipc = ""
    if root:
        if want_net and libc.unshare(NEWNET) == 0:
            net = "namespace"
        if libc.unshare(NEWIPC) == 0:
            ipc = "namespace"
    else:
        # An unprivileged user namespace makes the others possible where the host allows it.
        if libc.unshare(NEWUSER | (NEWNET if want_net else 0) | NEWIPC) == 0:
            net, ipc = ("user-namespace" if want_net else ""), "user-namespace"
        elif want_net and libc.unshare(NEWUSER | NEWNET) == 0:
            net = "user-namespace"
    return net or "socket-patch", ipc or "host"


def _cap_ipc(cap_bytes):
    # The run's own IPC namespace starts with the host's limits (SysV shm: unlimited); these
    # sysctls are per namespace, so this caps only the run: shared memory within the memory cap,
    # few message queues.
    page = os.sysconf("SC_PAGE_SIZE")
    for key, value in (
        ("kernel/shmmax", cap_bytes),
        ("kernel/shmall", cap_bytes // page),
        ("kernel/shmmni", 64),
        ("kernel/msgmni", 16),
        ("fs/mqueue/queues_max", 16),
    ):
        try:
            with open("/proc/sys/" + key, "w") as f:
                f.write(f"{value}\n")
        except OSError:
            pass


def _private_mounts(libc, uid, tmp_bytes):
    # A private mount namespace in which every host mount is read-only, fresh size-capped tmpfs
    # on /tmp, /var/tmp, /dev/shm and /run/lock are the only writable places (the run's workdir
    # is recreated inside the new /tmp), and directories the sandbox uid could not traverse (a
    # pyenv under a 0700 /root) are replaced by a tmpfs exposing only the interpreter's subtree.
    import ctypes

    RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 0x4000, 0x40000

    def mount(src, target, fstype, flags, data=None):
        if libc.mount(src, target.encode(), fstype, flags, data) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), target)

    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, REC | PRIVATE)  # nothing leaks back to the host
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:  # fields[4]: mount point (octal escapes), fields[5]: per-mount options
        target = fields[4].encode().decode("unicode_escape").encode("latin-1").decode()
        opts = fields[5].split(",")
        flags = REMOUNT | BIND | RDONLY | NOSUID
        flags |= (NODEV if "nodev" in opts else 0) | (NOEXEC if "noexec" in opts else 0)
        mount(None, target, None, flags)
    blocked = {}
    for entry in sys.path:
        if not entry.startswith("/") or not os.path.isdir(entry):
            continue
        parts = entry.strip("/").split("/")
        for depth in range(1, len(parts)):
            parent = "/" + "/".join(parts[:depth])
            if not os.stat(parent).st_mode & 0o001:
                blocked.setdefault(parent, set()).add(parts[depth])
                break
    for parent, children in blocked.items():
        held = {c: os.open(parent + "/" + c, os.O_PATH) for c in children}
        mount(b"tmpfs", parent, b"tmpfs", NOSUID | NODEV, b"mode=0755,size=1m")
        for child, fd in held.items():
            os.mkdir(parent + "/" + child)
            mount(b"/proc/self/fd/%d" % fd, parent + "/" + child, None, BIND | REC)
            os.close(fd)
        mount(None, parent, None, REMOUNT | RDONLY | NOSUID | NODEV)
    workdir = os.getcwd()
    opts = b"mode=1777,size=%d" % max(tmp_bytes, 1 << 20)
    for target in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
        if os.path.isdir(target) and not os.path.islink(target):
            mount(b"tmpfs", target, b"tmpfs", NOSUID | NODEV, opts)
    if workdir.startswith("/tmp/"):
        os.makedirs(workdir, 0o700)
        os.chown(workdir, uid, uid)
        os.chdir(workdir)
    return "private"


_main()
