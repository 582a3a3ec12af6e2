"""The solver's sandbox: an OS-level jail from bubblewrap (``bwrap``, Debian package ``bubblewrap``).

The solver process sees a file system made only of read-only system folders (``/usr``, ``/etc``...), the
Python installation and virtual environment, phantombench's own package folders, the solver's source file,
an empty ``/tmp`` and one writable scratch folder. It has its own PID, IPC, UTS, cgroup and user namespaces
and **no network** (a fresh network namespace with only a loopback). So it can neither read the data root
(truth included) nor write the board, a record or a dataset, nor see the harness process (its command line,
its working directory, its environment) nor reach another machine. A clean environment is passed in: PATH,
locale, thread counts, the device request and HOME pointing at the scratch folder.

bubblewrap needs unprivileged user namespaces (or root). Where it is missing or cannot start,
:func:`probe` says so, the harness runs the solver unconfined, and the record says ``sandbox: none``.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt", "/sys")
PACKAGES = ("phantombench", "phantombench.generators", "phantombench.solvers", "phantombench.meshes")
KEEP_ENV = ("PATH", "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "PHANTOMBENCH_DEVICE", "CUDA_VISIBLE_DEVICES", "PETSC_OPTIONS", "TORCH_NUM_THREADS")


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as asked (one line)."""


@functools.cache
def probe() -> str | None:
    """'bwrap <version>' if a bubblewrap jail starts on this machine, else None."""
    exe = shutil.which("bwrap")
    if exe is None or os.environ.get("PHANTOMBENCH_SANDBOX", "").lower() == "none":
        return None
    try:
        ok = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--dev", "/dev",
                             "--proc", "/proc", "true"], capture_output=True, timeout=20).returncode == 0
        ver = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return f"bwrap {ver[-1] if ver else '?'}" if ok else None


def package_dirs() -> list[Path]:
    """The folders phantombench's code is loaded from (an editable install maps them into the repository)."""
    out: list[Path] = []
    for name in PACKAGES:
        mod = importlib.import_module(name)
        out += [Path(p).resolve() for p in getattr(mod, "__path__", [])]
    return sorted(set(out))


def readable_paths(extra: list[Path] | None = None) -> list[Path]:
    """Everything the jailed solver can read (besides its scratch folder, /tmp, /dev and /proc)."""
    paths = [Path(p) for p in SYSTEM_DIRS if Path(p).exists()]
    paths += [Path(os.path.abspath(sys.prefix)), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
              *package_dirs()]
    paths += [Path(p).resolve() for p in extra or []]
    return sorted(set(paths))


def _inside(path: Path, roots: list[Path]) -> Path | None:
    path = path.resolve()
    for r in roots:
        if path == r or r in path.parents:
            return r
    return None


def check_private(private: list[Path], readable: list[Path]) -> None:
    """Refuse to start when a folder the solver must not see (data root, board) is inside a readable one."""
    for p in private:
        r = _inside(Path(p), readable)
        if r is not None:
            raise SandboxError(f"{p} lies inside {r}, which the sandboxed solver can read; "
                               "keep data and board outside the code and Python folders")


def _devices() -> list[str]:
    args: list[str] = []
    for dev in sorted(Path("/dev").glob("nvidia*")):
        args += ["--dev-bind-try", str(dev), str(dev)]
    return args


def command(argv: list[str], scratch: Path, private: list[Path], extra_read: list[Path] | None = None) -> list[str]:
    """``argv`` wrapped in a bubblewrap jail (see the module docstring); ``private`` paths are checked unseen."""
    exe = shutil.which("bwrap")
    if exe is None:
        raise SandboxError("bubblewrap (bwrap) is not installed")
    readable = readable_paths(extra_read)
    check_private(private, readable)
    scratch = Path(scratch).resolve()
    if _inside(scratch, [Path(p).resolve() for p in private]) is not None:
        raise SandboxError(f"the scratch folder {scratch} lies inside the data root or the board")
    scratch.mkdir(parents=True, exist_ok=True)
    args = [exe, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--tmpfs", "/tmp"]                  # first: later binds may lie under /tmp
    for p in readable:
        args += ["--ro-bind", str(p), str(p)]
    args += ["--dev", "/dev", *_devices(), "--proc", "/proc", "--tmpfs", "/dev/shm",
             "--bind", str(scratch), str(scratch), "--chdir", str(scratch)]
    for k in KEEP_ENV:
        if k in os.environ:
            args += ["--setenv", k, os.environ[k]]
    args += ["--setenv", "HOME", str(scratch), "--setenv", "TMPDIR", "/tmp",
             "--setenv", "PHANTOMBENCH_SCRATCH", str(scratch), "--setenv", "MPLCONFIGDIR", "/tmp"]
    return args + ["--", *argv]
