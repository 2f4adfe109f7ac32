"""Where explorations run their evaluations: in this process, on local worker processes, or
on a Dask cluster; and the progress bar they show.

:class:`Executor` is what ``hwgen compare`` and ``hwgen search`` share: a context manager
that runs a picklable, module-level function on many items and yields each result as it
comes back. Local workers are fresh interpreters (the ``spawn`` start method), never forks;
a Dask executor (``tcp://host:8786``; ``pip install hwgen[dask]``) runs the same function on
the cluster's workers, which need hwgen installed. An executor stays open across batches,
so workers are started (and import torch) once per run, not once per batch.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

from ..errors import ArgumentError, HwgenError, check_int

__all__ = ["Executor", "progress_bar"]


def _dask_client(address):
    try:
        from dask.distributed import Client
    except ImportError:
        raise HwgenError("A Dask executor needs the dask extra: pip install "
                         "'hwgen[dask]'") from None
    try:
        return Client(address, timeout="10s")
    except OSError as e:
        raise HwgenError(f"Cannot reach the Dask scheduler at {address!r}: {e}") from None


class Executor:
    """Runs evaluations serially (``jobs=1``), on ``jobs`` local processes, or on the Dask
    cluster whose scheduler is at ``address`` (which then takes precedence over ``jobs``).

    Use it as a context manager; :meth:`map` may be called any number of times inside.
    """

    def __init__(self, jobs=1, address=None):
        self.jobs = check_int(jobs, "Jobs", minimum=1)
        if address is not None and not isinstance(address, str):
            raise ArgumentError(f"Executor address must be a string like "
                                f"'tcp://host:8786', not {address!r}")
        self.address = address
        self._pool = None
        self._client = None

    def __enter__(self):
        if self.address is not None:
            self._client = _dask_client(self.address)
        elif self.jobs > 1:
            # Fresh interpreters, not forks: a fork of a process whose torch or OpenMP
            # threads hold a lock can deadlock in the child.
            self._pool = ProcessPoolExecutor(max_workers=self.jobs,
                                             mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc):
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def map(self, fn, items):
        """Yield ``(index, fn(item))`` for every item, in the order they finish."""
        items = list(items)
        if self._client is not None:
            from dask.distributed import as_completed as dask_completed
            futures = {self._client.submit(fn, item, pure=False): n
                       for n, item in enumerate(items)}
            for future in dask_completed(futures):
                yield futures[future], future.result()
        elif self._pool is not None:
            futures = {self._pool.submit(fn, item): n for n, item in enumerate(items)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        else:
            for n, item in enumerate(items):
                yield n, fn(item)


def progress_bar(total, desc, unit, enabled=True):
    """A tqdm progress bar on stderr (``total`` may be None when unknown)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled)
