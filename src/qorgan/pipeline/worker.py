"""The process a console hunt runs in: ``python -m qorgan.pipeline.worker``, its job as JSON
on standard input (see :meth:`qorgan.pipeline.hunts.HuntRunner.job`).

It first limits its own address space (``RLIMIT_AS``) to the job's ``memory_mib``, and asks
the kernel to end it if the serving process dies, then runs
:func:`qorgan.pipeline.hunts.execute`, which writes progress, alerts and the end of the hunt to
the database. A hunt that runs out of memory is recorded as failed by ``execute``; if memory
runs out before (or while recording), the process exits with
:data:`MEMORY_EXIT` and the serving process records the failure.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from typing import Any

import orjson

from qorgan.core.processes import end_with_parent

MiB = 1 << 20
#: The exit code of a hunt process that ran out of memory outside the hunt itself.
MEMORY_EXIT = 3


def limit_memory(mib: int) -> None:
    """Cap this process's address space: allocations past it fail with MemoryError."""
    size = mib * MiB
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        size = min(size, hard)
    resource.setrlimit(resource.RLIMIT_AS, (size, hard))


def run(job: dict[str, Any]) -> None:
    from pathlib import Path

    from qorgan.core.db import make_engine, session_factory
    from qorgan.core.settings import Settings
    from qorgan.pipeline.hunts import PlanSpec, execute, read_options

    # Only what the job names: the environment may describe another deployment.
    settings = Settings.model_construct(
        database_url=job["database_url"],
        timezone=job["timezone"],
        hunt_max_record_mib=job["max_record_mib"],
        hunt_max_decompressed_mib=job["max_decompressed_mib"],
        hunt_max_compression_ratio=job["max_compression_ratio"],
    )
    engine = make_engine(settings)
    try:
        execute(
            job["hunt_id"],
            factory=session_factory(engine),
            plan=PlanSpec.from_json(job["plan"]).load,
            min_level=job["min_level"],
            options=read_options(settings),
            hunt_root=Path(job["hunt_root"]),
            memory_limit_mib=job["memory_mib"],
            workers=job.get("workers") or 0,
            anomaly_key=job["anomaly_key"].encode("utf-8") if job.get("anomaly_key") else None,
        )
    finally:
        engine.dispose()


def main() -> int:
    job = orjson.loads(sys.stdin.buffer.read())
    end_with_parent(job["parent"])
    limit_memory(job["memory_mib"])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(job)
    except MemoryError:
        os.write(2, b"MemoryError: the hunt process ran out of memory\n")
        os._exit(MEMORY_EXIT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
