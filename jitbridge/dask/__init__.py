"""jitbridge on Dask (``pip install "jitbridge[dask]"``): the same kernels over ``dask.array``,
and compiled code shipped to every worker so that none of them compiles.

    import dask.array as da
    import jitbridge.dask as jd
    import jitbridge.kernels as K

    jd.ship_cache(client)                     # every worker, present and future, loads instead of compiling
    y = jd.map_blocks(K.gelu, x)              # a jb.jit function, a jb.kernel or a library kernel per block
    p = jd.softmax(x)                         # row-wise kernels: the last axis in one chunk
    total = jd.sum_sq(x).compute()            # reductions: library kernels per block, Dask's tree to combine
    jd.worker_stats(client)                   # {worker: jb.stats() there}

Importing it needs ``dask[array]`` and ``distributed``; ``import jitbridge`` never imports it.
"""
from .blocks import layernorm, logsumexp, map_blocks, normalize, softmax
from .reductions import argmax, dot, histogram, sum_sq, variance
from .ship import CachePlugin, ship_cache, shipped, worker_stats

__all__ = [
    "CachePlugin", "argmax", "dot", "histogram", "layernorm", "logsumexp", "map_blocks", "normalize", "ship_cache",
    "shipped", "softmax", "sum_sq", "variance", "worker_stats",
]
