"""Logins: growing delays per (name, address), the signed cookie, the bounded argon2 pool."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from review_app.auth import CookieCodec, LoginLimiter, VerifyPool


def test_failed_logins_grow_the_delay_for_that_name_and_address_only():
    limiter = LoginLimiter(free=3, base_s=1.0, max_s=8.0, window_s=600, client_free=20)
    for t in range(3):
        assert limiter.wait_s("Eve", "10.0.0.66", now=float(t)) == 0
        limiter.failed("eve", "10.0.0.66", now=float(t))
    # after the 3 free failures the next try waits 1 s, then 2, 4, 8, 8 (capped)
    t = 2.0
    assert limiter.wait_s("eve", "10.0.0.66", now=t) == pytest.approx(1.0)
    waits = []
    for _ in range(4):
        t += limiter.wait_s("eve", "10.0.0.66", now=t)
        waits.append(limiter.failed("eve", "10.0.0.66", now=t))
    assert waits == [2.0, 4.0, 8.0, 8.0]
    assert limiter.wait_s("EVE", "10.0.0.66", now=t) == pytest.approx(8.0)
    # the real owner of the name, from their own address, is never held up by the guesser
    assert limiter.wait_s("eve", "10.0.0.7", now=t) == 0
    assert limiter.wait_s("mallory", "10.0.0.66", now=t) == 0
    assert limiter.wait_s("eve", "10.0.0.66", now=t + 601) == 0  # old failures are forgotten
    limiter.succeeded("eve", "10.0.0.66")
    assert limiter.wait_s("eve", "10.0.0.66", now=t) == 0


def test_trying_many_names_from_one_address_is_slowed_too():
    limiter = LoginLimiter(free=3, base_s=1.0, max_s=60.0, window_s=600, client_free=5)
    for i in range(4):
        limiter.failed(f"name{i}", "10.0.0.66", now=float(i))
    assert limiter.wait_s("name99", "10.0.0.66", now=4.0) == 0  # 5 free across names
    limiter.failed("name4", "10.0.0.66", now=4.0)
    assert limiter.wait_s("name99", "10.0.0.66", now=4.0) == pytest.approx(1.0)
    assert limiter.wait_s("name99", "10.0.0.8", now=4.0) == 0


def test_the_limiter_forgets_the_oldest_keys_beyond_its_bound():
    limiter = LoginLimiter(free=0, max_keys=10)
    for i in range(50):
        limiter.failed(f"n{i}", f"10.0.{i}.1", now=0.0)
    assert len(limiter._failures) == 10


def test_the_session_cookie_is_signed_and_expires(tmp_path):
    key = tmp_path / "work" / "review-session.key"
    codec = CookieCodec(key, max_age_s=60)
    cookie = codec.encode("tok123")
    assert codec.decode(cookie) == "tok123"
    assert codec.decode(cookie[:-2] + "xx") is None  # tampered
    assert codec.decode("tok123") is None and codec.decode(None) is None
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert CookieCodec(key, 60).decode(cookie) == "tok123"  # a restarted server reads it
    assert CookieCodec(tmp_path / "other.key", 60).decode(cookie) is None
    expired = CookieCodec(key, max_age_s=-1)
    assert expired.decode(cookie) is None


def test_the_verify_pool_answers_busy_instead_of_queueing_without_bound():
    pool = VerifyPool(workers=1, queue=1)
    release = threading.Event()
    niceness = []

    def slow() -> str:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        release.wait(10)
        return "ok"

    first = pool.submit(slow, client="10.0.0.66")
    assert pool.submit(slow, client="10.0.0.66") is None  # one check at a time per client
    second = pool.submit(slow, client="10.0.0.7")
    assert first is not None and second is not None
    assert pool.submit(slow, client="10.0.0.8") is None  # full: refused at once
    release.set()
    assert first.result(10) == second.result(10) == "ok"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pool.submit(lambda: None, client="x") is None:
        time.sleep(0.01)  # slots come back as the checks finish
    assert niceness and all(n >= 10 for n in niceness)  # below the voters' priority
