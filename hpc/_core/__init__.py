"""The stable core: the work-stealing thread pool, ``join`` and ``scope``. Knows nothing of iter, mpi or cuda."""

from hpc._core.join import join
from hpc._core.pool import ThreadPool, current_num_threads, current_pool, default_pool
from hpc._core.scope import Scope, scope

__all__ = ["Scope", "ThreadPool", "current_num_threads", "current_pool", "default_pool", "join", "scope"]
