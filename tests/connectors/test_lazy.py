"""`lazy_module`: the heavy import happens on first use, once, even when many threads need it at once
(Beam's threaded runners start many DoFns together)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipec.connectors._lazy import lazy_module

SLOW_MODULE = '''
import builtins, time
builtins.SLOW_MODULE_RAN = True
time.sleep(0.3)  # threads arrive while the module is still executing
def answer():
    return 42
'''

THREADS = '''
import sys, threading
sys.path.insert(0, sys.argv[1])
from pipec.connectors._lazy import lazy_module
slow = lazy_module("slow_to_import")
import builtins
assert not hasattr(builtins, "SLOW_MODULE_RAN")  # nothing executed yet
barrier = threading.Barrier(8)
results, errors = [], []
def use():
    barrier.wait()
    try:
        results.append(slow.answer())
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=use) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(results, errors)
'''


def test_first_use_from_many_threads_at_once_sees_the_whole_module(tmp_path: Path) -> None:
    (tmp_path / "slow_to_import.py").write_text(SLOW_MODULE)
    done = subprocess.run(
        [sys.executable, "-c", THREADS, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{[42] * 8} []"


def test_a_missing_module_fails_at_once() -> None:
    with pytest.raises(ImportError, match="no_such_module_anywhere"):
        lazy_module("no_such_module_anywhere")
