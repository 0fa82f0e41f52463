"""The jitbridge kernel library, written in the jitbridge DSL (import as ``jitbridge.kernels``)."""
