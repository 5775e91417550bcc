"""Lean REPL pool: per-proof cost with and without reusing the header environment.

Measured on the stand-in REPL from tests/test_lean.py (Lean cannot be installed here), with
its header elaboration set to HEADER_S seconds (a real ``import Mathlib`` takes several
seconds and GBs) and instant proofs: the figure isolates the pool's own overhead and the
saving from elaborating the header once per REPL instead of once per proof.

    python benchmarks/bench_lean_pool.py [PROOFS] [HEADER_S]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_lean import DOC, STAND_IN

from lm_eval_monkeys.verifiers.lean import LeanChecker


def per_proof(directory: Path, proofs: int, max_uses: int) -> float:
    checker = LeanChecker(
        directory,
        repl_command=[sys.executable, str(directory / "repl.py")],
        pool_size=1,
        timeout_s=60,
        max_uses=max_uses,
    )
    target = checker.target(DOC)
    start = time.perf_counter()
    for i in range(proofs):
        assert checker.is_correct(f"  linarith -- {i}", target)
    checker.close()
    return (time.perf_counter() - start) / proofs


def main() -> None:
    proofs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    header_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "repl.py").write_text(
            STAND_IN.replace("time.sleep(0.2)", f"time.sleep({header_s})")
        )
        os.environ["STANDIN_LOG"] = str(directory / "log")
        reuse = per_proof(directory, proofs, max_uses=100)
        fresh = per_proof(directory, proofs, max_uses=1)
    print(f"stand-in REPL, header {header_s:.2f} s, {proofs} proofs")
    print(f"env reused (one header per REPL): {reuse * 1e3:.1f} ms per proof")
    print(f"fresh REPL per proof:             {fresh * 1e3:.1f} ms per proof")
    print(
        f"reuse saves {fresh / reuse:.0f}x; with a real Mathlib import of H seconds and a proof "
        f"of P seconds, the pool costs about P + H/100 per proof vs P + H without reuse"
    )


if __name__ == "__main__":
    main()
