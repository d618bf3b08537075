"""What every fuzz target shares: cutting one input into reads, and starting atheris.

A target is a module ``fuzz_<name>.py`` with ``test_one_input(data)`` (which
raises only on a broken contract), ``SEEDS`` (inputs the corpus starts from),
and ``if __name__ == "__main__": fuzz_main(test_one_input)``. Nothing here
imports atheris at module level, so the test suite replays targets without it.
"""

from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# Inputs longer than this are cut into at most this many reads: enough cuts
# to hit every state boundary, few enough to keep an execution cheap.
_MAX_CUTS = 16


def chunks(spec: int, payload: bytes) -> list[bytes]:
    """Cut ``payload`` into non-empty reads chosen by ``spec`` (one octet of the input).

    ``spec % 4 == 0`` feeds one octet at a time (every boundary at once);
    otherwise ``spec`` seeds the cut points, so the fuzzer can vary them.
    An empty payload is no reads at all (an empty read means EOF to some parsers).
    """
    if not payload:
        return []
    if spec % 4 == 0 and len(payload) <= 4096:
        return [payload[i : i + 1] for i in range(len(payload))]
    rng = random.Random(spec)
    cuts = sorted({rng.randrange(1, len(payload) + 1) for _ in range(rng.randrange(_MAX_CUTS))})
    out, start = [], 0
    for cut in [*cuts, len(payload)]:
        if cut > start:
            out.append(payload[start:cut])
            start = cut
    return out


def split(data: bytes, n: int) -> tuple[bytes, bytes]:
    """The first ``n`` octets (zero-padded) as parameters, and the rest as the payload."""
    return data[:n].ljust(n, b"\0"), data[n:]


def fuzz_main(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under atheris with libFuzzer's command line (``sys.argv``)."""
    import atheris  # type: ignore[import-untyped]  # only the fuzz session has it

    # Coverage of every loaded module's code, the target's parser included:
    # the targets import mailio_trio before this runs.
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
