"""math-verify in helper processes, for r1kit.answers and the judge (see answers' docstring for why).

Each helper is a fresh `python -c` process that imports math-verify and answers
(op, gold, pred) messages over two pipes; a call that overruns R1KIT_MATH_TIMEOUT
kills its helper and counts as a failed check.
"""

from __future__ import annotations

import atexit
import functools
import os
import queue
import subprocess
import sys
import threading

from r1kit.errors import R1kitError


def _serve(rfd: int, wfd: int) -> None:
    """Helper-process loop: receive (op, gold, text), answer True/False/None.

    op "gold": does the gold parse to a mathematical object (a bare string fallback does not
    count: "\\frac{" is no gold)? "check": is `text`, an answer that is only math, equal to the
    gold? It is parsed inside \\boxed{} (the judge sends only text without words). "extract": is
    free `text`, read with math-verify's own extraction (its default configs), equal to the gold?
    An extraction that holds words is no answer: a sentence is never a product of symbols.
    """
    import logging
    from multiprocessing.connection import Connection

    logging.disable(logging.CRITICAL)  # math-verify warns on every disabled timeout
    inbox, outbox = Connection(rfd, writable=False), Connection(wfd, readable=False)
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except ImportError as e:
        outbox.send(("error", f"math answers need math-verify ({e}); install it: pip install math-verify"))
        return
    from r1kit.answers import strip_units, words_in

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]

    def parse_all(s: str, fallback: bool) -> list:
        return parse(
            s, configs, fallback_mode="first_match" if fallback else "no_fallback", parsing_timeout=None
        )

    @functools.lru_cache(maxsize=4096)
    def parse_gold(gold: str) -> list:
        parsed = parse_all("\\boxed{" + gold + "}", False) or parse_all("$" + gold + "$", False)
        return parsed if any(not isinstance(p, str) for p in parsed) else []

    def parse_pred(op: str, text: str) -> list:
        if op == "check":
            return parse_all("\\boxed{" + text + "}", True)
        parsed = parse_all(text, True)
        found = [p for p in parsed if isinstance(p, str)]
        return [] if any(words_in(strip_units(p)) for p in found) else parsed

    outbox.send("ready")
    while True:
        try:
            op, gold, text = inbox.recv()
        except (EOFError, OSError):
            return
        try:
            parsed_gold = parse_gold(gold)
            if not parsed_gold:
                result = None
            elif op == "gold":
                result = True
            else:
                parsed = parse_pred(op, text)
                result = bool(parsed) and bool(verify(parsed_gold, parsed, timeout_seconds=None))
        except Exception:  # noqa: BLE001  any parser or sympy failure is a failed check, never a crash
            result = None if op == "gold" else False
        outbox.send(result)


class _Helper:
    """One math-verify process, talked to over two pipes; killed when a call overruns."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _spawn(self) -> None:
        from multiprocessing.connection import Connection

        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
        code = f"from r1kit._mathverify import _serve; _serve({to_child_r}, {from_child_w})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=(to_child_r, from_child_w),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.send_conn = Connection(to_child_w, readable=False)
        self.recv_conn = Connection(from_child_r, writable=False)
        self.ready = False

    def _wait_ready(self) -> None:
        reply = (
            self.recv_conn.recv()
            if self.recv_conn.poll(120)
            else ("error", "math-verify helper did not start")
        )
        if reply != "ready":
            self.kill()
            raise R1kitError(reply[1] if isinstance(reply, tuple) else str(reply))
        self.ready = True

    def call(self, message: tuple, timeout: float):
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            self._spawn()
        if not self.ready:
            self._wait_ready()  # start-up time does not count against the call's timeout
        try:
            self.send_conn.send(message)
            if self.recv_conn.poll(timeout):
                return self.recv_conn.recv()
        except (EOFError, OSError):
            pass
        self.kill()  # overran or died: start a replacement now, so it is warm by the next call
        self._spawn()
        return None if message[0] == "gold" else False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.send_conn.close()
            self.recv_conn.close()
        self.proc = None


class _HelperPool:
    def __init__(self, size: int, timeout: float) -> None:
        self.timeout = timeout
        self.helpers = [_Helper() for _ in range(size)]
        self.idle: queue.Queue[_Helper] = queue.Queue()
        for helper in self.helpers:
            self.idle.put(helper)

    def call(self, message: tuple):
        helper = self.idle.get()
        try:
            return helper.call(message, self.timeout)
        finally:
            self.idle.put(helper)

    def close(self) -> None:
        for helper in self.helpers:
            helper.kill()


_POOL: _HelperPool | None = None
_POOL_LOCK = threading.Lock()


def _env_number(name: str, default: float, cast=float):
    text = os.environ.get(name)
    try:
        value = cast(text) if text else default
    except ValueError:
        raise R1kitError(f"{name}={text!r} is not a number; unset it or set e.g. {name}={default}") from None
    if value <= 0:
        raise R1kitError(f"{name} must be > 0, got {value}")
    return value


def math_workers() -> int:
    """How many math-verify helper processes run (R1KIT_MATH_WORKERS)."""
    return _env_number("R1KIT_MATH_WORKERS", 1 if (os.cpu_count() or 1) < 4 else 2, int)


def math_timeout() -> float:
    """Seconds one math-verify check may take before it counts as False (R1KIT_MATH_TIMEOUT)."""
    return _env_number("R1KIT_MATH_TIMEOUT", 3.0)


def _pool() -> _HelperPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = _HelperPool(math_workers(), math_timeout())
            atexit.register(_POOL.close)
        return _POOL


def close_pool() -> None:
    """Stop the helper processes (a new pool starts on the next call)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
        _POOL = None
