"""Placeholder while the dispatcher is written: jit is numba.njit."""
import numba

jit = numba.njit
