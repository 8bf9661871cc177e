"""The harness run inside the sandboxed child interpreter (`python -I -c <this file's text>`).

It is read as text by r1kit/rewards/sandbox.py and never imported. It runs as root
(when the parent is root) until it drops privileges: everything it needs from the
interpreter is bound to locals before the first line of untrusted code runs.
"""
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
    cfg = json.loads(raw[cut + 1:])
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

    root, uid = os.geteuid() == 0, cfg["uid"]
    libc = ctypes.CDLL(None, use_errno=True)
    mode = "socket-patch"
    if cfg["net"]:
        # As root a plain net namespace; otherwise a user namespace makes it possible.
        if root and libc.unshare(0x40000000) == 0:
            mode = "namespace"
        elif not root and libc.unshare(0x50000000) == 0:
            mode = "user-namespace"
    if mode == "socket-patch":
        import socket, _socket

        class _NoSocket(_socket.socket):
            def __init__(self, *args, **kwargs):
                raise PermissionError(13, "network access is disabled in the r1kit sandbox")

        socket.socket = socket.SocketType = _socket.socket = _NoSocket
    fs = "host"
    if root and uid is not None and cfg["mounts"]:
        try:
            fs = _private_mounts(libc, uid, cfg["limits"]["fsize"])
        except OSError:
            complain()
    for name in cfg["preimport"] if fs != "private" else ():
        try:
            __import__(name)
        except BaseException:
            pass
    lim, R = cfg["limits"], resource
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
    for res, soft, hard in ((R.RLIMIT_CORE, 0, 0), (R.RLIMIT_CPU, lim["cpu"], lim["cpu"] + 1),
                            (R.RLIMIT_FSIZE, lim["fsize"], lim["fsize"]),
                            (R.RLIMIT_NOFILE, lim["nofile"], lim["nofile"]),
                            (R.RLIMIT_NPROC, nproc, nproc), (R.RLIMIT_AS, lim["as"], lim["as"])):
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
    except BaseException:
        complain()
        code = None
    tests = []
    for i, (src, is_case) in enumerate(cfg["segments"]):
        try:
            tests.append((compile_(src, "<test %d>" % i, "exec"), is_case))
        except BaseException:
            complain()
            tests.append((None, is_case))
    del cfg, program
    mod = types.ModuleType("solution")
    sys.modules["solution"] = mod
    ns = mod.__dict__
    bdict = builtins.__dict__
    pristine = dict(bdict)
    settrace, setprofile = sys.settrace, sys.setprofile
    report(b"net " + mode.encode())
    report(b"fs " + fs.encode())

    loaded = False
    if code is not None:
        try:
            exec_(code, ns)
            loaded = True
        except BaseException:
            complain()
    if loaded:
        report(b"loaded")
    broken, case = not loaded, 0
    for obj, is_case in tests:
        settrace(None)
        setprofile(None)
        bdict.clear()
        bdict.update(pristine)
        ok = False
        if not broken and obj is not None:
            try:
                exec_(obj, ns)
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
    bdict.update(pristine)
    for stream in (sys.stdout, sys.stderr):
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


def _private_mounts(libc, uid, tmp_bytes):
    # A private mount namespace: fresh size-capped tmpfs on /tmp, /var/tmp and
    # /dev/shm (the run's workdir is recreated inside the new /tmp), and
    # directories the sandbox uid could not traverse (a pyenv under a 0700
    # /root) replaced by a tmpfs exposing only the interpreter's own subtree.
    import ctypes

    def mount(src, target, fstype, flags, data=None):
        if libc.mount(src, target.encode(), fstype, flags, data) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), target)

    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, 0x4000 | 0x40000)  # MS_REC | MS_PRIVATE: nothing leaks back to the host
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
        mount(b"tmpfs", parent, b"tmpfs", 2 | 4, b"mode=0755,size=1m")  # MS_NOSUID | MS_NODEV
        for child, fd in held.items():
            os.mkdir(parent + "/" + child)
            mount(b"/proc/self/fd/%d" % fd, parent + "/" + child, None, 4096 | 0x4000)  # MS_BIND | MS_REC
            os.close(fd)
    workdir = os.getcwd()
    opts = b"mode=1777,size=%d" % max(tmp_bytes, 1 << 20)
    for target in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(target) and not os.path.islink(target):
            mount(b"tmpfs", target, b"tmpfs", 2 | 4, opts)
    if workdir.startswith("/tmp/"):
        os.makedirs(workdir, 0o700)
        os.chown(workdir, uid, uid)
        os.chdir(workdir)
    return "private"


_main()
