"""The reward guard: no reward, built-in or user-supplied, can end or stall a training run.

`r1kit.rewards.registry.resolve_reward` wraps every reward it returns in `guard()`. A call that
raises, runs past its time bound, or returns something that is not one finite number (or None)
per completion gives None for the completions concerned, logs one warning line per reward (the
first time) and is counted: `FAILURES[name]`, and through trl's `log_metric` the metric
`rewards/<name>/failed` (the share of the call's completions left unscored; logged on every call
once the reward has failed once, so trl's average over a logging step stays a true share).

Why None and not 0: trl reads None as "not scored". It becomes NaN, is left out of that
reward's logged mean and weighs 0 in the weighted sum of rewards (nansum), and a row every reward
left unscored gets advantage 0 (r1kit.rl.losses.group_advantages). 0 would instead claim "wrong"
for an accuracy reward (lowering the logged accuracy and the prioritized sampler's success rates)
and "no penalty" for a negative one: neither is what happened. A completion that makes a reward
crash therefore earns nothing from it, and the rest of the run goes on.

What is not caught: `R1kitError` (a user mistake such as a missing column: one line, exit 2),
KeyboardInterrupt and SystemExit (Ctrl-C and SIGTERM must still stop the run).

Time bound. The reward runs in the calling thread (rewards that use signal.alarm, such as
math-verify's own timeouts, need the main thread). At the deadline a timer thread raises
`RewardOverrun` in that thread (PyThreadState_SetAsyncExc, again every second while the reward
swallows it) and, on the main thread, also sends it a private real-time signal whose handler
raises, which wakes a sleep or a blocking read. Code stuck inside one C call that holds the GIL
(a catastrophic regex) cannot be interrupted in-process; its late result is still discarded. The
bound is `reward_timeout_s` from the registry parameters, else the R1KIT_REWARD_TIMEOUT
environment variable, else DEFAULT_TIMEOUT_S, raised to a reward's own `r1kit_time_bound(n,
kwargs)` where it has one (the code reward: its sandbox deadline times the batch's rounds).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import inspect
import logging
import math
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable

from r1kit.errors import R1kitError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0
TIMEOUT_ENV = "R1KIT_REWARD_TIMEOUT"
FAILURES: Counter = Counter()  # failed calls per reward name, for the whole process
_failed_once: set[str] = set()


class RewardOverrun(BaseException):
    """Raised inside a reward that ran past its bound (BaseException: `except Exception` in the
    reward does not swallow it)."""


def timeout_from(params: dict | None) -> float:
    value = (params or {}).get("reward_timeout_s") or os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise R1kitError(f"reward timeout {value!r} is not a number of seconds (${TIMEOUT_ENV})") from None
    if not seconds > 0:
        raise R1kitError(f"reward timeout must be > 0 seconds, got {value!r}")
    return seconds


def guard(fn: Callable, name: str, timeout_s: float) -> Callable:
    """`fn` under the guard (see the module docstring), named `name`, sync or async as `fn` is."""
    if inspect.iscoroutinefunction(fn):

        async def guarded_async(*args, **kwargs):
            n, log_metric = _batch(args, kwargs)
            try:
                values = await asyncio.wait_for(fn(*args, **kwargs), _bound(fn, timeout_s, n, kwargs))
            except R1kitError:
                raise
            except asyncio.TimeoutError:
                return _failed(
                    name, n, f"ran past its {_bound(fn, timeout_s, n, kwargs):.0f} s bound", log_metric
                )
            except Exception as e:  # noqa: BLE001  the point of the guard
                return _failed(name, n, f"{type(e).__name__}: {e}", log_metric)
            return _checked(name, values, n, log_metric)

        wrapper = guarded_async
    else:

        def guarded(*args, **kwargs):
            n, log_metric = _batch(args, kwargs)
            bound = _bound(fn, timeout_s, n, kwargs)
            try:
                values = _call_bounded(fn, args, kwargs, bound)
            except R1kitError:
                raise
            except RewardOverrun:
                return _failed(name, n, f"ran past its {bound:.0f} s bound", log_metric)
            except Exception as e:  # noqa: BLE001  the point of the guard
                return _failed(name, n, f"{type(e).__name__}: {e}", log_metric)
            return _checked(name, values, n, log_metric)

        wrapper = guarded
    functools.update_wrapper(wrapper, fn)
    wrapper.__name__ = name
    wrapper.r1kit_guarded = True
    return wrapper


def _batch(args, kwargs) -> tuple[int, Callable | None]:
    completions = kwargs.get("completions", args[1] if len(args) > 1 else ())
    try:
        n = len(completions)
    except TypeError:
        n = 0
    log_metric = kwargs.get("log_metric")
    return n, log_metric if callable(log_metric) else None


def _bound(fn, timeout_s: float, n: int, kwargs: dict) -> float:
    own = getattr(fn, "r1kit_time_bound", None)
    if callable(own):
        try:
            return max(timeout_s, float(own(n, kwargs)))
        except Exception:  # noqa: BLE001, S110  a broken bound falls back to the configured one
            pass
    return timeout_s


def _failed(name: str, n: int, why: str, log_metric) -> list[None]:
    FAILURES[name] += 1
    if name not in _failed_once:
        _failed_once.add(name)
        logger.warning(
            "reward %r failed (%s); its values for this batch are None (not scored). The run goes "
            "on; further failures are counted in rewards/%s/failed",
            name,
            why[:300],
            name,
        )
    _log(name, 1.0, log_metric)
    return [None] * n


def _log(name: str, share: float, log_metric) -> None:
    if log_metric is not None and name in _failed_once:
        try:
            log_metric(f"rewards/{name}/failed", share)
        except Exception:  # noqa: BLE001, S110  logging must not break scoring
            pass


def _checked(name: str, values, n: int, log_metric) -> list:
    """One finite float or None per completion; anything else fails (the whole call, or that value)."""
    try:
        values = list(values)
    except Exception as e:  # noqa: BLE001
        return _failed(name, n, f"returned {type(values).__name__}, not a list ({e})", log_metric)
    if len(values) != n:
        return _failed(name, n, f"returned {len(values)} values for {n} completions", log_metric)
    out: list[float | None] = []
    bad = 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        try:
            x = float(v)
        except Exception:  # noqa: BLE001
            x = math.inf
        if math.isnan(x):
            out.append(None)  # trl's "not scored"
        elif math.isinf(x):
            bad += 1
            out.append(None)
        else:
            out.append(x)
    if bad:
        _failed(name, 0, f"returned {bad} value(s) that are not finite numbers", None)
        _log(name, bad / max(n, 1), log_metric)
    else:
        _log(name, 0.0, log_metric)
    return out


# ---- running a call in this thread with a deadline ----

_WAKE = getattr(signal, "SIGRTMIN", None)
_WAKE = _WAKE + 7 if _WAKE is not None else None
_state = threading.local()
_wake_installed = False
_install_lock = threading.Lock()


def _install_wake() -> bool:
    """A handler for the private wake-up signal (main thread only: signal.signal requires it)."""
    global _wake_installed
    if _wake_installed:
        return True
    if _WAKE is None or threading.current_thread() is not threading.main_thread():
        return False
    with _install_lock:
        if not _wake_installed:
            try:
                signal.signal(_WAKE, _on_wake)
                _wake_installed = True
            except (ValueError, OSError):
                return False
    return True


def _on_wake(signum, frame):
    call = getattr(_state, "call", None)
    if call is not None and call.overran and not call.finished:
        raise RewardOverrun()


class _Call:
    def __init__(self, bound: float, wake: bool):
        self.thread = threading.get_ident()
        self.wake = wake
        self.lock = threading.Lock()
        self.overran = self.finished = False
        self.timer = threading.Timer(bound, self.fire)
        self.timer.daemon = True

    def fire(self) -> None:
        with self.lock:
            if self.finished:
                return
            self.overran = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.thread), ctypes.py_object(RewardOverrun)
            )
            if self.wake:
                try:
                    signal.pthread_kill(self.thread, _WAKE)
                except OSError:
                    pass
            # The reward may catch it (a bare except): raise it again every second until it returns.
            self.timer = threading.Timer(1.0, self.fire)
            self.timer.daemon = True
            self.timer.start()

    def finish(self) -> None:
        with self.lock:
            self.finished = True
            self.timer.cancel()
            if self.overran:  # withdraw an exception not yet delivered, so it cannot fire after we return
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread), None)


def _call_bounded(fn: Callable, args, kwargs, bound: float):
    """fn(*args, **kwargs) in this thread; RewardOverrun once it runs past `bound` seconds."""
    if getattr(_state, "call", None) is not None:  # a guarded reward calling another: the outer bound holds
        return fn(*args, **kwargs)
    call = _Call(bound, wake=_install_wake() and threading.current_thread() is threading.main_thread())
    _state.call = call
    try:
        call.timer.start()
        return fn(*args, **kwargs)
    finally:
        # An overrun raised while we get here must not escape later into the caller: finish() withdraws
        # any exception not yet delivered and stops the timer; one delivered meanwhile is retried past.
        while True:
            try:
                call.finish()
                break
            except RewardOverrun:
                continue
        _state.call = None
        if call.overran:
            raise RewardOverrun()  # returned late (stuck in C code): the result is not used
