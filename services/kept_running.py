"""A local service on a kept folder that a run may leave running on purpose, for a later run to adopt.

The marker file says the recorded processes were left running on purpose (`tenantctl rehearse --keep-running`),
so a later run may adopt them. Without it, recorded processes still running were left by a killed run, and the
service stops them before it starts (fleet rule 6).
"""

from __future__ import annotations

from pathlib import Path

KEPT_RUNNING = "kept-running"


def marked(root: Path | None) -> bool:
    """Whether the service on `root` was left running on purpose."""
    return root is not None and (root / KEPT_RUNNING).is_file()


def unmark(root: Path | str) -> None:
    """What runs on `root` from now on is the current run's, until it is left running again."""
    (Path(root) / KEPT_RUNNING).unlink(missing_ok=True)


class KeptRunning:
    """`leave_running` and `adopted` for a service class with a kept root (`_kept_root`), a flag `_adopted`
    that its `stop` honours (an adopted service is only let go), and a way to say whether it runs now."""

    _kept_root: Path | None
    _adopted: bool
    LEFT_RUNNING_WHAT = "service"  # what the error calls it
    ERROR: type[Exception] = RuntimeError

    def _is_running(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def leave_running(self) -> None:
        """Let go of the service and leave it running, marked on its kept root: a later run adopts it, and
        `stop_recorded` (`tenantctl rehearse --stop`) stops it."""
        if self._kept_root is None:
            raise self.ERROR(f"only a {self.LEFT_RUNNING_WHAT} on a kept root can be left running")
        if self._is_running():
            (self._kept_root / KEPT_RUNNING).touch()
        self._adopted = True
        self.stop()

    @property
    def adopted(self) -> bool:
        """Attached to a service an earlier run left running (adopt()), which stop() leaves running."""
        return self._adopted
