"""Where the network allows it, a ServiceDesk Plus host name must also resolve to public addresses only.

`validate` judges host names by their form and never needs the network (tenancy.model). The program
also resolves each name, briefly: a public-looking name that points at a loopback, private, link-local
or metadata address is refused. A name that does not resolve here (no DNS in CI, a split horizon) is
not an error: the form check already ran, and the post-deploy check reaches the real endpoint.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait

from tenancy.model import non_public_host

# One budget for all names, looked up together: a fleet of thousands must not wait on DNS one by one.
RESOLVE_BUDGET_S = 3.0
RESOLVERS = 16


def _non_public_answer(hostname: str) -> str | None:
    try:
        answers = socket.getaddrinfo(hostname, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return None
    for *_rest, address in answers:
        reason = non_public_host(address[0])
        if reason:
            return f"{hostname} resolves to {reason}"
    return None


_offline = False


@contextlib.contextmanager
def names_unresolved() -> Iterator[None]:
    """No name is resolved meanwhile (`resolved_non_public` finds none): for the desired-state digest, whose run
    of the program is offline. What a name resolves to is not desired state: a stack the digest skips changes
    nothing (its row already holds the URL), and a stack that runs resolves its names again in the engine's run."""
    global _offline
    before, _offline = _offline, True
    try:
        yield
    finally:
        _offline = before


def resolved_non_public(hostnames: list[str], budget: float = RESOLVE_BUDGET_S) -> dict[str, str]:
    """Each distinct host name that resolves to a non-public address, with why; names that do not resolve
    within the budget are left out."""
    found: dict[str, str] = {}
    if _offline:
        return found
    pool = ThreadPoolExecutor(max_workers=RESOLVERS)
    try:
        futures = {pool.submit(_non_public_answer, name): name for name in sorted(set(hostnames))}
        done, _late = wait(futures, timeout=budget)
        for future in done:
            if future.result():
                found[futures[future]] = future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return found
