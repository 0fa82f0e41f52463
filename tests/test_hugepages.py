"""Large arrays that compiled code allocates get transparent huge pages; small ones, the off
switch and systems without THP get plain memory; freed memory goes back to the system."""
import ctypes
import sys

import numpy as np
import pytest
from _subprocess import run_json
from typer.testing import CliRunner

import jitbridge as jb
from jitbridge import cli, config, hugepages

MODE = hugepages.thp_mode()
THP_USABLE = sys.platform.startswith("linux") and MODE in ("always", "madvise")
needs_thp = pytest.mark.skipif(not THP_USABLE, reason=f"transparent huge pages not usable here (mode: {MODE})")
needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

# 48 MiB: above glibc's largest mmap threshold (32 MiB), so every such block is a fresh mapping
# and never lands in memory an earlier block advised.
LARGE = 6 << 20


@jb.jit
def filled(n):
    out = np.empty(n)
    for i in range(n):
        out[i] = 0.5 * i
    return out


def _advised(arr):
    return hugepages.backing(arr.ctypes.data, arr.nbytes).advised


@needs_thp
def test_large_outputs_are_on_huge_pages_and_small_ones_are_not():
    out = run_json(f"""
        import json
        import numpy as np
        import jitbridge as jb
        import jitbridge.kernels as K
        from jitbridge import hugepages

        @jb.jit
        def kinds(n):
            a = np.empty(n)
            for i in range(n):
                a[i] = i
            return a, np.zeros(n), np.empty_like(a), a * 2.0 + 1.0

        small = kinds(32 * 1024)                     # 256 KiB each, allocated first
        large = kinds({LARGE})
        x = np.ones({LARGE})
        library = K.scale(x, 3.0)
        for arr in large + (library,):
            arr[::512] = 1.0                         # touch every 4 KiB page
        report = lambda arr: list(hugepages.backing(arr.ctypes.data, arr.nbytes))
        print(json.dumps({{"small": [report(a) for a in small], "large": [report(a) for a in large],
                          "library": report(library), "state": list(hugepages.state()),
                          "values": float(large[3][-1]) == 2.0 * ({LARGE} - 1) + 1.0}}))
    """)
    assert out["state"][0] is True and out["values"]
    for advised, huge_bytes in out["large"]:
        assert advised and huge_bytes >= LARGE * 8 // 2, out["large"]  # np.empty, zeros, empty_like, expression
    assert out["library"][0]  # the kernel library's outputs come from NumPy, which advises them too
    assert all(not advised for advised, _ in out["small"]), out["small"]
    if MODE == "madvise":
        assert all(huge_bytes == 0 for _, huge_bytes in out["small"])


@needs_proc
def test_off_switch_leaves_compiled_code_on_plain_pages():
    out = run_json(f"""
        import json
        import numpy as np
        import jitbridge as jb
        from jitbridge import hugepages

        @jb.jit
        def ones(n):
            return np.ones(n)

        a = ones({LARGE})
        print(json.dumps({{"backing": list(hugepages.backing(a.ctypes.data, a.nbytes)),
                          "state": hugepages.state(), "describe": hugepages.describe(), "sum": float(a.sum())}}))
    """, env={"JITBRIDGE_HUGE_PAGES": "0"})
    assert out["state"] is None and out["describe"] == "off (JITBRIDGE_HUGE_PAGES=0)"
    assert out["backing"][0] is False and out["sum"] == LARGE
    if MODE == "madvise":
        assert out["backing"][1] == 0


@needs_thp
def test_scope_turns_the_advice_off_and_back_on():
    assert _advised(filled(LARGE)) and hugepages.state().in_use
    with config.scope(huge_pages=False):
        plain = filled(LARGE)
        assert not _advised(plain) and plain[-1] == 0.5 * (LARGE - 1)
    assert _advised(filled(LARGE))


@needs_proc
def test_rss_stays_flat_over_1000_allocate_free_cycles_of_80_mb():
    out = run_json("""
        import json
        import numpy as np
        import jitbridge as jb

        N = 10_000_000  # 80 MB of float64

        @jb.jit
        def freed_inside(n):
            a = np.empty(n)
            for i in range(n):
                a[i] = 1.0
            return a[n // 2]

        @jb.jit
        def returned(n):
            return np.ones(n)

        def rss():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

        def cycle(k):
            if k % 2:
                assert freed_inside(N) == 1.0
            else:
                a = returned(N)
                assert a[N // 2] == 1.0
                del a

        for k in range(20):
            cycle(k)
        before = rss()
        for k in range(1000):
            cycle(k)
        print(json.dumps({"before": before, "after": rss()}))
    """, timeout=600)
    assert out["after"] - out["before"] < 16 << 20, out


@needs_thp
def test_realloc_keeps_contents_and_advises_the_grown_block():
    """NRT's realloc (growing lists, varsize buffers) through its own C entry points."""
    pointer, size = ctypes.c_void_p, ctypes.c_size_t
    new = hugepages.nrt_function("MemInfo_new_varsize", pointer, size)
    realloc = hugepages.nrt_function("MemInfo_varsize_realloc", pointer, pointer, size)
    data_of = hugepages.nrt_function("MemInfo_data", pointer, pointer)
    release = hugepages.nrt_function("MemInfo_release", None, pointer)
    filled(10)
    small, grown = 1 << 20, 40 << 20
    meminfo = new(small)
    pattern = bytes(range(256)) * (small // 256)
    try:
        ctypes.memmove(data_of(meminfo), pattern, small)
        data = realloc(meminfo, grown)
        assert ctypes.string_at(data, small) == pattern
        assert hugepages.backing(data, grown).advised
    finally:
        release(meminfo)


def test_lists_that_grow_past_a_huge_page_are_correct():
    @jb.jit
    def grown(n):
        values = [0.0]
        for i in range(1, n):
            values.append(float(i))
        total = 0.0
        for v in values:
            total += v
        return total

    n = 1_000_000
    assert grown(n) == n * (n - 1) / 2  # exact in float64


def test_threads_allocating_large_temporaries_get_correct_results():
    @jb.jit(parallel=True)
    def per_thread(n, chunks):
        sums = np.empty(chunks)
        for c in jb.prange(chunks):
            tmp = np.full(n, float(c))
            sums[c] = tmp.sum()
        return sums

    np.testing.assert_array_equal(per_thread(1 << 19, 8), (1 << 19) * np.arange(8.0))


@needs_proc
@pytest.mark.parametrize("enabled,reason", [("always madvise [never]\n", "'never'"), (None, "no transparent huge pages")])
def test_without_thp_allocation_is_plain_and_quiet(tmp_path, enabled, reason):
    if enabled is not None:
        (tmp_path / "enabled").write_text(enabled)
    thp_dir = tmp_path if enabled is not None else tmp_path / "missing"
    out = run_json(f"""
        import json, warnings
        warnings.simplefilter("error")
        from pathlib import Path
        import numpy as np
        import jitbridge as jb
        from jitbridge import hugepages
        hugepages.THP_DIR = Path({str(thp_dir)!r})

        @jb.jit
        def ones(n):
            return np.ones(n)

        total = sum(float(ones({LARGE}).sum()) for _ in range(3))
        a = ones({LARGE})
        print(json.dumps({{"state": list(hugepages.state()), "describe": hugepages.describe(), "total": total,
                          "advised": hugepages.backing(a.ctypes.data, a.nbytes).advised}}))
    """)
    assert out["state"][0] is False and reason in out["state"][1] and out["describe"].startswith("not in use")
    assert out["total"] == 3 * LARGE and out["advised"] is False and out["stderr"] == ""


@needs_proc
def test_an_allocator_that_cannot_be_built_leaves_plain_allocation():
    out = run_json(f"""
        import json
        import numpy as np
        import jitbridge as jb
        from jitbridge import hugepages

        def fails(page):
            raise RuntimeError("no JIT here")
        hugepages._build = fails

        @jb.jit
        def ones(n):
            return np.ones(n)

        total = float(ones({LARGE}).sum())
        print(json.dumps({{"state": list(hugepages.state()), "sum": total}}))
    """)
    assert out["sum"] == LARGE and out["state"][0] is False
    if THP_USABLE:
        assert "no JIT here" in out["state"][1]


@needs_thp
def test_numba_statistics_on_before_the_first_compile_leave_the_allocator_alone():
    """numba aborts on an allocator change while its statistics are on and blocks are alive."""
    out = run_json(f"""
        import json
        import numba
        import numpy as np
        import jitbridge as jb
        from jitbridge import hugepages

        alive = numba.njit(lambda n: np.ones(n))(1000)     # NRT initialised, statistics on, a live block

        @jb.jit
        def ones(n):
            return np.ones(n)

        a = ones({LARGE})
        print(json.dumps({{"state": list(hugepages.state()), "sum": float(a.sum()) + float(alive.sum())}}))
    """, env={"NUMBA_NRT_STATS": "1"})
    assert out["state"][0] is False and "NUMBA_NRT_STATS" in out["state"][1]
    assert out["sum"] == LARGE + 1000


def test_info_says_whether_huge_pages_are_in_use():
    filled(10)
    result = CliRunner().invoke(cli.app, ["info"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("huge pages:"))
    if THP_USABLE:
        assert "in use (THP" in line and "MiB of huge pages" in line
    else:
        assert "not in use" in line


def test_setting_reads_jitbridge_huge_pages():
    assert config.from_env({}).huge_pages is True
    assert config.from_env({"JITBRIDGE_HUGE_PAGES": "0"}).huge_pages is False


def test_a_library_without_a_symbol_table_is_a_reason_not_an_error(tmp_path):
    fake = tmp_path / "fake.so"
    fake.write_bytes(b"not an ELF file")

    class Extension:
        __file__ = str(fake)

    assert "not in the symbol table" in hugepages._find_set_allocator(Extension())
