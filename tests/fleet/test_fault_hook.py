"""The crash tests' fault hook (fleet.stack_run.FAULT_ENV) signals the tenantctl process, wherever the engine runs:
in a pool worker (its parent) or in tenantctl itself (`tenantctl destroy` used to, and the test would have killed
whatever had started tenantctl)."""

from __future__ import annotations

import multiprocessing
import os
import signal

from fleet import stack_run


def test_in_process_the_hook_signals_this_process_at_the_nth_event_of_its_stack(monkeypatch):
    sent = []
    monkeypatch.setenv(stack_run.FAULT_ENV, "prod.acme:2:SIGTERM")
    monkeypatch.setattr(stack_run.os, "kill", lambda pid, sig: sent.append((pid, sig)))

    hit = stack_run.fault_injection("prod.acme")
    hit(None)
    assert sent == []
    hit(None)

    assert sent == [(os.getpid(), signal.SIGTERM)]
    assert stack_run.fault_injection("prod.globex") is None


def test_in_a_pool_worker_the_hook_signals_its_parent_the_tenantctl_process():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(stack_run.tenantctl_pid) == os.getpid()
