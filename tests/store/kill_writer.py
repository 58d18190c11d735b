"""Child process for the kill test: streams readings into the store, printing each acknowledgement.

Run as ``python -m tests.store.kill_writer PATH START`` from the repository root. Every 7th step
also stores a back-fill (three older readings in one transaction) and every 11th a checkpoint, so
kills land inside every kind of write. Output lines: ``ack SEQ_INDEX DUPLICATE``.
"""

from __future__ import annotations

import sys

from edgetwin.store import Store, TwinCheckpoint
from tests.store.helpers import at, cgm


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    store = Store.open(path)
    print("open", flush=True)
    i = start
    while True:
        if i % 7 == 0 and i >= 3:
            acks = store.add_many([cgm(j, device="backfill") for j in range(i - 3, i)])
            for j, ack in zip(range(i - 3, i), acks, strict=True):
                print(f"backfill {j} {int(ack.duplicate)}", flush=True)
        if i % 11 == 0:
            store.save_checkpoint(
                TwinCheckpoint(at(5 * i), "test", 1, b"\x00" * 2000, {"i": float(i)}), keep_blobs=3
            )
        ack = store.add_cgm(cgm(i))
        print(f"ack {i} {int(ack.duplicate)}", flush=True)
        i += 1


if __name__ == "__main__":
    main()
