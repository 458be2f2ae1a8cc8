"""Start the tests' fresh Python processes from a warm interpreter (a fork server, "zygote").

A simulated-vLLM process spends most of its start importing third-party libraries (torch,
torch._inductor, transformers, openai, fastapi, ...: ~80% of the CPU of `import vllm` plus a
platform and a config here). None of them depends on the simulated arch, the vLLM version or the
plugin. A zygote imports them once and forks a child per process asked for; the child then
starts like `python -c CODE`: fresh `__main__`, the requested environment and standard streams,
and no module of vLLM, rocm_enable or amdsmi imported (the zygote checks that), so every
import-time decision of vLLM and of the plugin is still taken in the child, under its arch.

The one thing done differently from a cold start: vllm.env_override (every vLLM under test,
0.32.0-0.34.0) forces TORCHINDUCTOR_COMPILE_THREADS=1 and PYTORCH_NVML_BASED_CUDA_CHECK=1 before
it imports torch._inductor; the zygote imports torch._inductor under the same two values (then
removes them again, so the child's environment is exactly the requested one).

One zygote per environment that the preloaded libraries could read, per pytest process: the
variables of the test process's own environment and those a library reads at import (TRITON_*,
TORCH*, OMP_*, ...), less those only vLLM and rocm_enable read (ROCM_ENABLE*, VLLM_*) and
pytest's per-test PYTEST_CURRENT_TEST. The others
a test adds for its snippet (EXT_FILE, LOAD_PLUGIN, ...) are the child's own, so cases that
differ only in them share a zygote. So is PYTHONPATH (a vLLM overlay, a stand-in aiter, a
patched vLLM tree): the child puts its entries where `python` would (after '', before the
standard library), which is the same as a cold start as long as no entry holds a package the
zygote imported; a PYTHONPATH that does (checked per request) gets a cold process. The first
process of an environment starts its zygote while fewer than MAX_LIVE are up (a zygote's start
costs about what a cold child's imports cost, so it pays off from the second child on); with
MAX_LIVE up it starts cold, and the second one starts the zygote: a one-off must not evict one
that serves many. ROCM_ENABLE_TEST_FRESH=1 starts every process cold (`python -c`), to compare.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile

FRESH_ENV = "ROCM_ENABLE_TEST_FRESH"
CHILD_ONLY_PREFIXES = ("ROCM_ENABLE", "VLLM_")
# PYTEST_CURRENT_TEST is the test process's own, but pytest changes it for every test and phase:
# keyed on it, every test got a zygote key of its own, so its first process started cold and a
# second one started a zygote for that test alone. No preloaded library reads it at import.
CHILD_ONLY_NAMES = ("PYTHONPATH", "PYTEST_CURRENT_TEST")
IMPORT_TIME_PREFIXES = ("PYTHON", "TRITON_", "TORCH", "PYTORCH_", "OMP_", "MKL_", "KMP_",
                        "OPENBLAS_", "NUMEXPR_", "CUDA_", "HIP_", "HSA_", "ROCM_PATH", "LD_",
                        "HF_", "TRANSFORMERS_", "TOKENIZERS_", "OPENAI_", "XGRAMMAR")

# What vLLM (0.32.0-0.34.0) imports from third-party packages, costliest first, measured with
# `python -X importtime`. Not cv2: it starts a thread at import (a fork would leave it behind);
# not torch.utils.cpp_extension: its setuptools import appends to sys.path, which the child
# would then see before vLLM's import does it (tests/test_zygote.py compares sys.path).
PRELOAD = (
    "torch", "torch._inductor", "torch._inductor.lowering", "torch._inductor.compile_fx",
    "openai", "transformers", "transformers.modeling_gguf_pytorch_utils",
    "transformers.models.auto.image_processing_auto", "fastapi",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "xgrammar", "regex",
    "triton.experimental.gluon", "compressed_tensors", "aiohttp",
    "pydantic", "prometheus_client", "psutil", "zmq", "huggingface_hub",
)
# vllm.env_override sets these before it imports torch._inductor (see the module docstring).
INDUCTOR_IMPORT_ENV = {"TORCHINDUCTOR_COMPILE_THREADS": "1", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
# Never imported by the zygote: the child decides about them (rocm_enable.sim stubs or blocks
# some of them before vLLM's platform is imported).
NOT_PRELOADED = ("vllm", "rocm_enable", "amdsmi", "torchvision", "torchaudio", "torchcodec")

SERVER = r"""
import atexit, builtins, importlib, json, os, signal, socket, sys, traceback, types
_env = dict(os.environ)
os.environ.update(%(inductor_env)r)
for _name in %(preload)r:
    try:
        importlib.import_module(_name)
    except ImportError:  # not every vLLM under test imports every one of them
        pass
os.environ.clear(); os.environ.update(_env)
_bad = [m for m in sys.modules if m.split(".")[0] in %(not_preloaded)r]
if _bad:
    raise SystemExit(f"zygote: preloading imported {_bad[:5]}; the child must import these itself")
_sock = socket.socket(fileno=int(sys.argv[1]))
_sock.send(json.dumps(sorted({m.split(".")[0] for m in sys.modules})).encode())
def _reap(*_):  # reaped here (not SIG_IGN), so their CPU time counts for the test process
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
signal.signal(signal.SIGCHLD, _reap)
sys.stdout.flush(); sys.stderr.flush()

def _child(request, fds):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _sock.close()
    stdin, stdout, stderr, status = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.set_inheritable(status, False)
    os.environ.clear(); os.environ.update(request["env"])
    os.chdir(request["cwd"])
    _entries = []  # PYTHONPATH as site.py leaves it in sys.path: absolute, no duplicates
    for _p in request["env"].get("PYTHONPATH", "").split(os.pathsep):
        if _p and os.path.abspath(_p) not in _entries and os.path.abspath(_p) not in sys.path:
            _entries.append(os.path.abspath(_p))
    sys.path[1:1] = _entries
    sys.argv = ["-c"]
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    rc = 0
    try:
        exec(compile(request["code"], "<string>", "exec"), main.__dict__)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        rc = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os.write(status, str(rc).encode())
        os._exit(rc)

while True:
    try:
        _msg, _fds, _, _ = socket.recv_fds(_sock, 1 << 22, 4)
    except OSError:
        break
    if not _msg:  # the test process went away: wait for the children still running
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            while True:
                os.wait()
        except ChildProcessError:
            break
    _request = json.loads(_msg)
    _pid = os.fork()
    if _pid == 0:
        _child(_request, _fds)
    for _fd in _fds:
        os.close(_fd)
    _sock.send(json.dumps({"pid": _pid}).encode())
""" % {"inductor_env": INDUCTOR_IMPORT_ENV, "preload": PRELOAD, "not_preloaded": NOT_PRELOADED}


class Child:
    """A process forked by a zygote (or started cold): its pid and exit status."""

    def __init__(self, pid: int, status_fd: int | None, popen: subprocess.Popen | None = None):
        self.pid, self._status_fd, self._popen = pid, status_fd, popen
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, or None while it runs after `timeout` seconds (-9: killed)."""
        if self.returncode is not None:
            return self.returncode
        if self._popen is not None:
            try:
                self.returncode = self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self.returncode
        if not select.select([self._status_fd], [], [], timeout)[0]:
            return None
        data = b""
        while chunk := os.read(self._status_fd, 64):
            data += chunk
        os.close(self._status_fd)
        self.returncode = int(data) if data else -signal.SIGKILL  # no status: killed
        return self.returncode

    def poll(self) -> int | None:
        return self.wait(0)

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


class Zygote:
    def __init__(self, env: dict[str, str]):
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr)
        theirs.close()
        hello = self._sock.recv(1 << 20)
        if not hello:
            raise RuntimeError("zygote did not start:\n" + self._stderr_tail())
        self.imported = frozenset(json.loads(hello))  # top-level names: never shadow these

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode()[-4000:]

    def shadows(self, pythonpath: str) -> bool:
        """Whether an entry of `pythonpath` holds a package this zygote imported from elsewhere."""
        for entry in filter(None, pythonpath.split(os.pathsep)):
            try:
                names = os.listdir(entry)
            except OSError:
                continue
            for name in names:
                if name.split(".")[0] in self.imported and not name.endswith(("-info", ".pth")):
                    return True
        return False

    def spawn(self, code: str, env: dict[str, str], stdin: int, stdout: int, stderr: int,
              cwd: str | None = None) -> Child:
        status_r, status_w = os.pipe()
        request = json.dumps({"code": code, "env": env, "cwd": cwd or os.getcwd()}).encode()
        try:
            socket.send_fds(self._sock, [request], [stdin, stdout, stderr, status_w])
            reply = self._sock.recv(1 << 16)
        finally:
            os.close(status_w)
        if not reply:
            os.close(status_r)
            raise RuntimeError("zygote died:\n" + self._stderr_tail())
        return Child(json.loads(reply)["pid"], status_r)

    def close(self) -> None:
        self._sock.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._stderr.close()


MAX_LIVE = 3  # each holds torch & co. (~550 MB, shared with its children)
_zygotes: dict[tuple, Zygote] = {}
_asked: set[tuple] = set()


def spawn(code: str, env: dict[str, str], *, stdin: int, stdout: int, stderr: int,
          cwd: str | os.PathLike | None = None) -> Child:
    """Start `python -c code` with exactly `env`, these standard stream fds and working folder
    `cwd` (default: this process's)."""
    cwd = os.fspath(cwd) if cwd is not None else None
    key = tuple(sorted((k, v) for k, v in env.items()
                       if k not in CHILD_ONLY_NAMES and not k.startswith(CHILD_ONLY_PREFIXES)
                       and (k in os.environ or k.startswith(IMPORT_TIME_PREFIXES))))
    zygote = None
    if os.environ.get(FRESH_ENV) != "1" and (key in _asked or key in _zygotes
                                             or len(_zygotes) < MAX_LIVE):
        zygote = _warm(key)
    _asked.add(key)
    if zygote is None or zygote.shadows(env.get("PYTHONPATH", "")):
        popen = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=stdin,
                                 stdout=stdout, stderr=stderr, cwd=cwd)
        return Child(popen.pid, None, popen)
    return zygote.spawn(code, env, stdin, stdout, stderr, cwd)


def run(args: list[str], *, input: str | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None, capture_output: bool = False, text: bool = False,
        cwd: str | os.PathLike | None = None, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run for `[sys.executable, "-c", code]` (what product code such as rocm_enable's
    explain starts), with the process started by spawn(); any other command, or an option this
    does not give, goes to subprocess.run itself."""
    if (kwargs or not capture_output or not text or len(args) != 3 or args[1] != "-c"
            or os.path.realpath(args[0]) != os.path.realpath(sys.executable)):
        return subprocess.run(args, input=input, env=env, timeout=timeout,
                              capture_output=capture_output, text=text, cwd=cwd, **kwargs)
    with tempfile.TemporaryFile("w+") as stdin, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        stdin.write(input or ""), stdin.flush(), stdin.seek(0)
        child = spawn(args[2], dict(os.environ if env is None else env), stdin=stdin.fileno(),
                      stdout=out.fileno(), stderr=err.fileno(), cwd=cwd)
        returncode = child.wait(timeout)
        if returncode is None:
            child.kill()
            raise subprocess.TimeoutExpired(args, timeout)
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(args, returncode, out.read(), err.read())


def run_module(module: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`python -m module *args` (a CLI the tests call, e.g. rocm_enable.cli) through run(): the
    child runs the module as `-m` does (runpy, __main__, sys.argv[0] the module's file)."""
    code = (f"import runpy, sys\nsys.argv = {['-m', *args]!r}\n"
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n")
    return run([sys.executable, "-c", code], **kwargs)


def run_script(path: str | os.PathLike, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`python path *args` through run(): sys.argv and sys.path[0] as for a script (runpy)."""
    path = os.path.abspath(path)
    code = (f"import runpy, sys\nsys.argv = {[path, *args]!r}\n"
            f"sys.path[0] = {os.path.dirname(path)!r}\n"
            f"runpy.run_path({path!r}, run_name='__main__')\n")
    return run([sys.executable, "-c", code], **kwargs)


def _warm(key: tuple) -> Zygote:
    """The live zygote of `key`, started if needed, now the most recently used."""
    zygote = _zygotes.pop(key, None)
    if zygote is None or zygote.proc.poll() is not None:
        while len(_zygotes) >= MAX_LIVE:
            _zygotes.pop(next(iter(_zygotes))).close()  # least recently used
        zygote = Zygote(dict(key))
    _zygotes[key] = zygote
    return zygote


@atexit.register
def close_all() -> None:
    for zygote in _zygotes.values():
        zygote.close()
    _zygotes.clear()
