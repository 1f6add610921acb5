"""A quiet console: the job's own lines on the console, third-party chatter in a debug log.

``setup(console_level, json_lines, debug_log)`` (the ``callcoach`` command) puts two
handlers on the root logger: the console shows the job's loggers (``callcoach*``) at
``console_level`` and anything else only at ERROR; a file, the debug log, gets everything
at DEBUG, Python warnings included (``logging.captureWarnings``).  Ray's and Ray Data's own
console handlers are taken off (``route_ray``, after Ray is imported and started) so their
records reach the same two handlers.

Ray workers print to the driver's console through Ray, not through these handlers: the
known harmless lines (Lightning's checkpoint-upgrade advice, torch's "triton not found",
Ray's deprecation of ``ray_remote_args``) are silenced in each worker at start
(``quiet_worker``, Ray's ``worker_process_setup_hook``).  What Ray's C++ core and its log
forwarding write straight to the process's stderr (file descriptor 2: an "E" line per
restartable actor whose constructor arguments live in the object store, the token
authentication notice...) passes through ``StderrFilter``, which moves the known lines
(``NOISY_LINES``) to the debug log and lets everything else through.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import warnings

OWN = "callcoach"
_state = {"routed": False, "debug_log": None}

# (logger, level at and above which it may still speak) in Ray workers and the driver
NOISY_LOGGERS = {
    "torch.utils.flop_counter": logging.ERROR,                      # "triton not found"
    "lightning.pytorch.utilities.migration.utils": logging.WARNING,  # checkpoint upgrade advice
    "pytorch_lightning.utilities.migration.utils": logging.WARNING,
    "lightning_fabric": logging.WARNING,
    "speechbrain": logging.WARNING,
}
NOISY_WARNINGS = (
    r".*`ray_remote_args` is deprecated.*",
    r".*upgrade_checkpoint.*",
    r".*[Tt]riton.*",
    r".*torchaudio\._backend.*",
    r".*std\(\): degrees of freedom.*",
)


# lines written straight to stderr (Ray's C++ core, Ray's forwarding of worker output)
NOISY_LINES = re.compile("|".join((
    r"has constructor arguments in the object store and max_restarts",   # actor-restart
    r"Token authentication is enabled for this Ray cluster",
    r"Generated new authentication token",
    r"Started a local Ray instance",
    r"Progress bars disabled",
    r"streaming_executor\.py.*execution finished",
    r"triton not found",
    r"Lightning automatically upgraded your loaded checkpoint",
    r"`ray_remote_args` is deprecated",
    r"Set ray log level from environment variable",
)))


class StderrFilter:
    """Filter what anything in this process (C++ included) writes to file descriptor 2:
    lines matching ``NOISY_LINES`` go to the debug log (or nowhere), the rest to the real
    stderr, whole lines, in order.  A context manager; a no-op when fd 2 cannot be
    redirected."""

    def __init__(self, debug_log: str | None):
        self.debug_log = debug_log
        self._saved = None
        self._thread = None

    def __enter__(self):
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, 2)
            os.close(write_fd)
        except (OSError, ValueError):
            self._saved = None
            return self
        self._thread = threading.Thread(target=self._pump, args=(read_fd, self._saved),
                                        name="stderr-filter", daemon=True)
        self._thread.start()
        return self

    def _pump(self, read_fd: int, out_fd: int) -> None:
        debug = None
        if self.debug_log:
            try:
                debug = open(self.debug_log, "ab")
            except OSError:
                debug = None
        out = os.dup(out_fd)
        buf = b""
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._route(line + b"\n", out, debug)
        if buf:
            self._route(buf, out, debug)
        os.close(out)
        if debug:
            debug.close()

    @staticmethod
    def _route(line: bytes, out: int, debug) -> None:
        if NOISY_LINES.search(line.decode("utf-8", "replace")):
            if debug:
                debug.write(line)
                debug.flush()
            return
        try:
            os.write(out, line)
        except OSError:
            pass

    def __exit__(self, *exc):
        if self._saved is None:
            return False
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)     # our write end is gone: the pump ends at EOF (or with
        os.close(self._saved)       # Ray's processes, which hold a copy until they exit)
        if self._thread is not None:
            self._thread.join(timeout=2)
        return False


class _ConsoleFilter(logging.Filter):
    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == OWN or record.name.startswith(OWN + ".")
        return record.levelno >= (self.level if own else logging.ERROR)


def setup(console_level: int, formatter: logging.Formatter, debug_log: str | None) -> str | None:
    """Console + debug-log handlers on the root logger; returns the debug log's path."""
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter)
    console.addFilter(_ConsoleFilter(console_level))
    handlers: list[logging.Handler] = [console]
    if debug_log:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(debug_log)), exist_ok=True)
            fh = logging.FileHandler(debug_log, mode="w", encoding="utf-8")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            fh.setLevel(logging.DEBUG)
            handlers.append(fh)
        except OSError:
            debug_log = None
    for old in root.handlers:
        if old not in handlers and isinstance(old, logging.FileHandler):
            old.close()
    root.handlers[:] = handlers
    root.setLevel(logging.DEBUG if debug_log else min(console_level, logging.INFO))
    logging.captureWarnings(True)
    for name in ("urllib3", "botocore", "boto3", "s3transfer", "filelock", "fsspec", "numba",
                 "matplotlib", "PIL", "asyncio"):
        logging.getLogger(name).setLevel(logging.INFO)
    quiet_loggers()
    _state.update(routed=True, debug_log=debug_log)
    return debug_log


def quiet_loggers() -> None:
    for name, level in NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def routed() -> bool:
    return _state["routed"]


def route_ray() -> None:
    """Take Ray's and Ray Data's console handlers off, so their records go where ours go
    (console: errors only; debug log: everything).  No-op unless ``setup`` ran."""
    if not _state["routed"]:
        return
    for name in list(logging.root.manager.loggerDict):
        if name != "ray" and not name.startswith("ray."):
            continue
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) \
                    and getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__,
                                                       sys.__stdout__):
                logger.removeHandler(h)
        logger.propagate = True


def quiet_worker() -> None:
    """Ray's ``worker_process_setup_hook``: silence known third-party noise in a worker."""
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    quiet_loggers()
