"""Streaming: a function or kernel over data larger than memory, in bounded memory.

    import jitbridge.stream
    import jitbridge.kernels as K

    for part in jitbridge.stream.map_chunks(K.logsumexp, "big.npy", chunk_size="64M"):
        ...                                                   # one result per chunk
    jitbridge.stream.map_chunks(K.softmax, "big.npy", out="probs.npy")   # into a memory-mapped file

``import jitbridge`` does not import it.
"""
from .chunks import map_chunks

__all__ = ["map_chunks"]
