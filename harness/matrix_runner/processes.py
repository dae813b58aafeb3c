"""The processes a run starts: anubis-server on port 0, a private redis-server, CPU pinning, and
reaping with wait4 so that each child's own peak RSS and CPU time are known."""

import ctypes
import json
import os
import re
import select
import signal
import socket
import subprocess
import time

from .errors import MatrixError

SERVER_START_TIMEOUT_S = 15
SERVER_STOP_TIMEOUT_S = 60

# The Redis a target = "redis" run starts, looked up on PATH.
REDIS_SERVER = "redis-server"


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def child_preexec(cpus):
    """What a child runs between fork and exec: it asks the kernel for SIGKILL when the runner
    dies, and pins itself to cpus (if any).

    The parent-death signal is the safety net under the runner's own cleanup, which kills each
    run's processes when the runner is interrupted: a signal that lands while Popen is still
    starting a child leaves the runner no handle to kill it with, and the kernel does it instead
    when the runner exits. It survives exec; a child whose parent died before the request took
    effect ends itself."""
    parent = os.getpid()

    def preexec():
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return preexec


def parse_cpus(text):
    """"0,2-3" -> [0, 2, 3]; "" or None -> []. Anything else, or a CPU this process may not
    use, is a MatrixError."""
    if text in (None, ""):
        return []
    allowed = os.sched_getaffinity(0)
    allowed_text = ",".join(map(str, sorted(allowed)))
    cpus = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise MatrixError("CPU list %r: %r is not a CPU number or a range like 2-3" % (
                text, part))
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise MatrixError("CPU list %r: the range %s is empty" % (text, part.strip()))
        # Bounded before it is expanded: a range such as 0-999999999 would fill the memory.
        if hi > max(allowed):
            raise MatrixError("CPU list %r: CPU %d not available to this process (allowed: %s)"
                              % (text, hi, allowed_text))
        cpus.extend(range(lo, hi + 1))
    missing = [c for c in cpus if c not in allowed]
    if missing:
        raise MatrixError("CPU list %r: CPU %s not available to this process (allowed: %s)" % (
            text, ",".join(map(str, missing)), allowed_text))
    return cpus


def signal_child(proc, sig):
    """Sends sig with os.kill rather than Popen.send_signal: send_signal first polls, and a child
    that has already died would be reaped there, leaving wait4 nothing to reap (ECHILD) and
    losing its exit status and rusage. A child nothing has waited for stays a zombie, so its pid
    cannot be reused before wait_rusage reaps it."""
    os.kill(proc.pid, sig)


def wait_rusage(proc, deadline):
    """Reaps proc with wait4 so that its own peak RSS and CPU time are known; kills it at deadline.
    Nothing else may wait for proc (no Popen.poll, wait, send_signal or kill).

    Returns (exit code, rusage). A negative exit code is the signal that ended it."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        if time.monotonic() > deadline:
            signal_child(proc, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        time.sleep(0.01)


def read_line_matching(fd, pattern, deadline, buffer):
    """Reads from a pipe until a line matches pattern (returns the match) or EOF/deadline (None)."""
    while True:
        for line in buffer[0].split("\n")[:-1]:
            match = pattern.match(line.strip())
            if match:
                return match
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buffer[0] += chunk.decode(errors="replace")


def read_to_eof(fd, deadline, buffer):
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer[0] += chunk.decode(errors="replace")


class AnubisServer:
    """One anubis-server on port 0: started, then stopped with SIGTERM and reaped with wait4.

    host and port are the address its `listening on HOST:PORT` line gives (an IPv6 HOST comes
    bracketed, `[::1]:1234`, and is kept without the brackets): a load client connects there,
    whatever --bind the flags chose."""

    LISTENING = re.compile(r"listening on (\[[^\]]*\]|.*):(\d+)$")
    # Every server started here listens on a free port of the kernel's choosing, and is asked
    # --check with the same port, since --check tries the address and port.
    PORT_FLAGS = ("--port", "0")

    def __init__(self, binary, flags, cpus, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, *self.PORT_FLAGS, *flags], stdout=subprocess.PIPE,
                                     stderr=self.log, preexec_fn=child_preexec(cpus))
        self.out = [""]
        match = read_line_matching(self.proc.stdout.fileno(), self.LISTENING,
                                   time.monotonic() + SERVER_START_TIMEOUT_S, self.out)
        if not match:
            code, _ = wait_rusage(self.proc, time.monotonic() + 5)
            self.close()
            said = tail(log_path)
            raise RuntimeError("server did not report `listening on` (exit %s) and %s" % (
                code, "wrote to stderr: " + said if said else "wrote nothing to stderr"))
        self.host = match.group(1).removeprefix("[").removesuffix("]")
        self.port = int(match.group(2))

    def stop(self):
        """SIGTERM, wait for exit. Returns (exit code, final dict or None, rusage)."""
        signal_child(self.proc, signal.SIGTERM)
        deadline = time.monotonic() + SERVER_STOP_TIMEOUT_S
        read_to_eof(self.proc.stdout.fileno(), deadline, self.out)
        code, usage = wait_rusage(self.proc, deadline)
        self.close()
        finals = [l for l in self.out[0].splitlines() if l.startswith("final ")]
        final = None
        if finals:
            try:
                final = json.loads(finals[-1][len("final "):])
            except ValueError:
                final = None
        return code, final, usage

    def kill(self):
        if self.proc.returncode is None:
            signal_child(self.proc, signal.SIGKILL)
            wait_rusage(self.proc, time.monotonic() + 5)
        self.close()

    def close(self):
        self.proc.stdout.close()
        self.log.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp_command(port, *words, timeout=5.0):
    """Sends one RESP command to 127.0.0.1:port and returns the decoded reply (str, int or None)."""
    payload = b"*%d\r\n" % len(words)
    for w in words:
        w = str(w).encode()
        payload += b"$%d\r\n%s\r\n" % (len(w), w)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        f = s.makefile("rb")
        line = f.readline()
        if not line:
            return None
        kind, rest = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis error: %s" % rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        raise RuntimeError("unexpected redis reply %r" % line)


class RedisServer:
    """A private redis-server (never the system service): no persistence, loopback, a free port.
    Whoever starts one checks first that REDIS_SERVER is installed (the runner does so before
    its first run)."""

    host = "127.0.0.1"

    def __init__(self, cpus, log_path, binary=REDIS_SERVER):
        self.log_path = log_path
        self.dir = os.path.dirname(os.path.abspath(log_path))
        last_error = ""
        for _ in range(5):  # another process may take the free port before redis binds it
            self.port = free_port()
            self.log = open(log_path, "w")
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--bind", self.host, "--daemonize", "no", "--dir", self.dir],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=child_preexec(cpus))
            if self._wait_ready(time.monotonic() + SERVER_START_TIMEOUT_S):
                return
            last_error = tail(log_path)
            self.kill()
        raise RuntimeError("redis-server did not answer PING: %s" % last_error)

    def _wait_ready(self, deadline):
        while time.monotonic() < deadline:
            pid, status, _ = os.wait4(self.proc.pid, os.WNOHANG)
            if pid == self.proc.pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return False
            try:
                if resp_command(self.port, "PING", timeout=1) == "PONG":
                    return True
            except (OSError, RuntimeError):
                pass
            time.sleep(0.02)
        return False

    def events(self):
        """INCRBY + DECRBY calls since start: the events Redis applied (INFO commandstats)."""
        info = resp_command(self.port, "INFO", "commandstats") or ""
        total = 0
        for name in ("incrby", "decrby"):
            match = re.search(r"cmdstat_%s:calls=(\d+)" % name, info)
            if match:
                total += int(match.group(1))
        return total

    def version(self):
        info = resp_command(self.port, "INFO", "server") or ""
        match = re.search(r"redis_version:(\S+)", info)
        return match.group(1) if match else None

    def stop(self):
        """SHUTDOWN NOSAVE (SIGTERM if that fails). Returns (exit code, rusage)."""
        try:
            resp_command(self.port, "SHUTDOWN", "NOSAVE")
        except (OSError, RuntimeError):
            signal_child(self.proc, signal.SIGTERM)
        code, usage = wait_rusage(self.proc, time.monotonic() + SERVER_STOP_TIMEOUT_S)
        self.log.close()
        return code, usage

    def kill(self):
        if self.proc.returncode is None:
            signal_child(self.proc, signal.SIGKILL)
            wait_rusage(self.proc, time.monotonic() + 5)
        self.log.close()


def tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(l.strip() for l in f.read().splitlines()[-lines:])
    except OSError:
        return ""
