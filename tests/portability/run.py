"""Run the notebooks under nbval on other machines, simulated: the portability check of `make test`.

Stored outputs must not depend on last-bit rounding, the BLAS kernel or the thread count. A
student's laptop differs from ours in exactly these, so this script re-runs the notebooks under
nbval once per condition below and fails if any cell's output differs from the stored one:

- ``Haswell``, ``Sandybridge-1-thread``, ``Prescott``: OpenBLAS forced to another CPU kernel
  with ``OPENBLAS_CORETYPE`` (matrix products then round differently), one of them also on one
  thread (``OPENBLAS_NUM_THREADS=1``). Each run sets these variables explicitly, overriding
  whatever the machine sets. A core type whose instructions this CPU lacks is skipped, with a
  note.
- ``one-ulp``: NumPy's and math's transcendental functions (tanh, exp, log, ...) moved by one
  unit in the last place, as another libm might round them: ``one_ulp.py`` beside this file,
  installed as an IPython start-up file in a fresh ``IPYTHONDIR``.

Before each run a kernel is started the way nbval starts it and reports the OpenBLAS kernel it
got and whether tanh is perturbed, so a condition that silently did not apply is an error.

Usage (``make test`` runs the first form)::

    python tests/portability/run.py [--condition NAME ...] PYTEST_ARGS... PATHS...
    python tests/portability/run.py --condition one-ulp --nbval --nbval-current-env \\
        --nbval-sanitize-with tests/nbval_sanitize.cfg book/ch03_backprop.ipynb

Everything this script does not know is passed to pytest unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (environment, CPU flags the kernel needs in /proc/cpuinfo)
CONDITIONS = {
    "Haswell": ({"OPENBLAS_CORETYPE": "Haswell"}, {"avx2", "fma"}),
    "Sandybridge-1-thread": ({"OPENBLAS_CORETYPE": "Sandybridge", "OPENBLAS_NUM_THREADS": "1"}, {"avx"}),
    "Prescott": ({"OPENBLAS_CORETYPE": "Prescott"}, {"pni"}),  # pni: SSE3
    "one-ulp": ({"IPYTHONDIR": None}, set()),  # IPYTHONDIR: a fresh profile, made below
}

PROBE = r"""
import ctypes, glob, json, math, os, numpy
def _corename():
    root = os.path.dirname(numpy.__file__)
    for lib in glob.glob(os.path.join(root, os.pardir, "numpy.libs", "*openblas*")) + \
               glob.glob(os.path.join(root, ".dylibs", "*openblas*")):
        dll = ctypes.CDLL(lib)
        for fn in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            if hasattr(dll, fn):
                getattr(dll, fn).restype = ctypes.c_char_p
                return getattr(dll, fn)().decode()
    return None
print(json.dumps({"core": _corename(), "tanh_perturbed": hasattr(numpy.tanh, "unperturbed"),
                  "math_perturbed": hasattr(math.tanh, "unperturbed")}))
"""


def cpu_flags() -> set[str] | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def probe(env: dict) -> dict:
    """Start a kernel as nbval does (jupyter_client, this Python) and ask what it runs with."""
    from jupyter_client.manager import start_new_kernel

    with open(os.devnull, "w") as devnull:
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=300, env=env, stderr=devnull)
    texts = []
    try:
        reply = kc.execute_interactive(
            PROBE, timeout=120,
            output_hook=lambda msg: texts.append(msg["content"]["text"]) if msg["msg_type"] == "stream" else None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the probe failed in the kernel: {reply['content']}")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return json.loads("".join(texts))


def environment(name: str, ipython_dir: Path) -> dict:
    env = dict(os.environ)
    for key, value in CONDITIONS[name][0].items():
        env[key] = str(ipython_dir) if key == "IPYTHONDIR" else value
    return env


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--condition", action="append", choices=sorted(CONDITIONS),
                        help="run only this condition (repeatable); default: all")
    args, pytest_args = parser.parse_known_args(argv)
    names = args.condition or list(CONDITIONS)

    flags = cpu_flags()
    baseline = probe(dict(os.environ))
    print(f"portability: the main run's OpenBLAS kernel is {baseline['core']}", flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="bptt-ipython-") as tmp:
        ipython_dir = Path(tmp)
        startup = ipython_dir / "profile_default" / "startup"
        startup.mkdir(parents=True)
        shutil.copy(HERE / "one_ulp.py", startup / "00-one-ulp.py")

        for name in names:
            env_vars, needs = CONDITIONS[name]
            if "OPENBLAS_CORETYPE" in env_vars and (baseline["core"] is None or flags is None or not needs <= flags):
                why = "NumPy here does not use OpenBLAS" if baseline["core"] is None else \
                    f"this CPU lacks {sorted(needs - (flags or set()))}"
                print(f"\n=== portability: {name}: skipped ({why})", flush=True)
                results.append((name, "skipped", None, 0.0))
                continue
            env = environment(name, ipython_dir)
            seen = probe(env)
            if name == "one-ulp":
                if not (seen["tanh_perturbed"] and seen["math_perturbed"]):
                    raise SystemExit(f"portability: {name}: the kernel did not load the one-ulp start-up file: {seen}")
            elif seen["tanh_perturbed"]:
                raise SystemExit(f"portability: {name}: tanh is perturbed where it should not be: {seen}")
            settings = " ".join(f"{k}={env[k]}" for k in env_vars)
            note = f"OpenBLAS kernel {seen['core']}"
            if name != "one-ulp" and seen["core"] == baseline["core"]:
                note += " (the same as the main run's)"
            print(f"\n=== portability: {name}: {settings}; {note}", flush=True)
            command = [sys.executable, "-m", "pytest", *pytest_args]
            print("=== " + " ".join(command), flush=True)
            start = time.perf_counter()
            code = subprocess.call(command, env=env)
            results.append((name, "passed" if code == 0 else f"FAILED (pytest exit {code})", seen["core"],
                            time.perf_counter() - start))

    print("\n=== portability summary", flush=True)
    for name, outcome, core, seconds in results:
        print(f"  {name:22s} {outcome:24s} OpenBLAS {core or '-':12s} {seconds:6.0f} s")
    return 0 if all(outcome in ("passed", "skipped") for _, outcome, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
