"""The helpers every generated kernel module of one dtype calls, as the source of two modules of their own: the
math (exp, tanh and σ as arithmetic that LLVM vectorizes, the step and ReLU, and the check of a pass's arrays for
NaN and inf), and the arrays' (copies of blocks, zeroing, sums of columns, one step's product of a batch with
stacked weights, flipped where that is faster). `gategraph.kernel` writes them to the kernel cache beside the
kernels, each of which imports them, so that Numba compiles the helpers once per dtype and not once for every
cell (from an empty cache they were about a quarter of a kernel module's compile). Two modules, so that two
processes compile them at once from an empty cache (gategraph.kernel: the second process, which compiles a
kernel's backward pass, imports the math first, the first process the arrays'; the arrays' take the longer, so
the check is with the math). Every helper has a signature: all of them compile, or load, as their module is
imported, under its lock in the cache (no helper compiles later, from a kernel, under that kernel's lock only,
where two processes compiling two cells could both write its entry in Numba's cache). A kernel module itself
then compiles nothing as it is imported: its passes compile when they first run, each under its own lock.

`name(dtype, part)` is a module's name, helpers_<dtype>_<part>_<hash of its text>: a change of the helpers is a
module of another name, and so a change of every kernel's import line (a new kernel). `NAMES[part]` are the
names a kernel imports from it; `PARTS` are the two parts, "arrays" and "math".

Imports: hashlib and math only; the module it writes imports NumPy, Numba and llvmlite.
"""

from __future__ import annotations

import functools
import hashlib
import math

# exp, tanh and σ set their own flags, without reassociation: Numba would otherwise compile them with the
# flags of the kernel that first calls them, and LLVM would fold the two halves of ln 2 back into one
MATH_FASTMATH = '{"nsz", "arcp", "contract", "afn"}'
NAMES = {"arrays": ("_colsum", "_copy", "_dot", "_flipped", "_product", "_wide", "_zero"),
         "math": ("_exp", "_nonfinite", "_relu", "_sigmoid", "_step", "_tanh")}
PARTS = tuple(NAMES)
GEMM = {"float32": "gategraph_cblas_sgemm", "float64": "gategraph_cblas_dgemm"}  # what `_product` and `_dot`
# call, by these names: cblas_sgemm and cblas_dgemm of the step BLAS gategraph.blas.register() tells LLVM of
# ("Steps": MKL, or gategraph's own OpenBLAS), for a product of fewer than SMALL multiply-adds
# (gategraph.blas.ONE_THREAD_BELOW: a product one thread serves best), and for every product while the BLAS of
# NumPy's products runs on one thread (THREADS reads its count): a pass on one thread runs all its products there
THREADS = "gategraph_kernel_blas_threads"
SYMBOLS = {**GEMM, "threads": THREADS}
SMALL = 1 << 24
# where a larger step's product u · S (a batch of B rows, S stacked weights) runs as (Sᵀ · uᵀ)ᵀ: in float32, S of
# FLIP_AT entries or more, B in FLIP_ROWS and a sequence of FLIP_STEPS steps or more (Sᵀ is made once per pass).
# OpenBLAS 0.3.30, SciPy's (SkylakeX kernel), multiplies (32 × 512) · (512 × 2048) in 1.1 ms, and flipped, with
# the copy back, in 0.8 ms; flipped it is slower for S of 2^16 entries, for 128 rows and more, and in float64
# (benchmarks/bench_step_product.py; benchmarks/results/step-product-*.md)
FLIP_AT = {"float32": 1 << 18, "float64": 1 << 62}
FLIP_ROWS = (8, 64)
FLIP_STEPS = 8
CHECKED = 16  # the arrays `_nonfinite` checks in one call (a pass with more calls it again)


@functools.cache
def name(dtype: str, part: str) -> str:
    """A helper module's name: helpers_<dtype>_<part>_<the first 16 hex digits of its text's SHA-256>."""
    return f"helpers_{dtype}_{part}_{hashlib.sha256(source(dtype, part).encode()).hexdigest()[:16]}"


@functools.cache
def source(dtype: str, part: str) -> str:
    """A helper module's text: `part` ("arrays" or "math") for `dtype` ("float32" or "float64")."""
    return _arrays(dtype) if part == "arrays" else _math(dtype)


def _arrays(dtype: str) -> str:
    """Copies, zeroing, column sums and a step's product (see the module's docstring)."""
    one, zero, t = f"np.{dtype}(1.0)", f"np.{dtype}(0.0)", dtype
    return f'''{_head(dtype, "array helpers", "from numba import njit, types")}
_INT = types.intc
_GEMM = types.ExternalFunction("{GEMM[dtype]}", types.void(_INT, _INT, _INT, _INT, _INT, _INT, types.{t}, types.voidptr,
                                                           _INT, types.voidptr, _INT, types.{t}, types.voidptr, _INT))
_THREADS = types.ExternalFunction("{THREADS}", _INT())
ROW_MAJOR, AS_IS, TRANSPOSED = 101, 111, 112  # CBLAS's constants


@njit("void({t}[:, ::1], int64, int64, {t}[:, ::1], int64, int64, int64, int64, boolean, boolean)",
      cache=True, error_model="numpy")
def _copy(dst, d0, d1, src, s0, s1, m, n, transpose, add):
    """dst[d0 + a, d1 + c] (+)= src[s0 + a, s1 + c], or src[s0 + c, s1 + a] if `transpose`, for a < m, c < n.
    Transposed, in tiles of 32 × 32 that stay in the cache while their columns are read (a (512 × 2048) float32
    matrix: 1.5 ms instead of 3 to 4.7 ms, row by row)."""
    if not transpose:
        for a in range(m):
            for c in range(n):
                if add:
                    dst[d0 + a, d1 + c] += src[s0 + a, s1 + c]
                else:
                    dst[d0 + a, d1 + c] = src[s0 + a, s1 + c]
        return
    for a0 in range(0, m, 32):
        for c0 in range(0, n, 32):
            for a in range(a0, min(a0 + 32, m)):
                for c in range(c0, min(c0 + 32, n)):
                    if add:
                        dst[d0 + a, d1 + c] += src[s0 + c, s1 + a]
                    else:
                        dst[d0 + a, d1 + c] = src[s0 + c, s1 + a]


@intrinsic
def _wide(typingctx):
    """Vectors of 512 bits for the loops of the pass that calls this, where the processor has them: LLVM's
    tuning for AVX-512 processors ("prefer-256-bit") keeps its loops to 256, and a pass's σ, tanh and products
    of gates then take twice the instructions. A function attribute of the calling pass only: what else the
    process compiles keeps LLVM's choice. Without AVX-512 the widest vectors stay those the processor has."""

    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')  # llvmlite lists no string attributes
        return context.get_dummy_value()

    return types.none(), codegen


@njit("void({t}[::1])", cache=True, error_model="numpy")
def _zero(a):
    for i in range(a.size):
        a[i] = 0


@njit("void({t}[:, ::1], {t}[:, ::1], {t}[:, ::1], int64, boolean)", cache=True, error_model="numpy")
def _gemm(a, b, c, col, add):
    """C[:, col:col + n] = A · B (n: B's columns), or += A · B if `add` (β = 1), through cblas_gemm of
    gategraph's own OpenBLAS (C-contiguous arrays; C may have more columns than B)."""
    m, k = a.shape
    n = b.shape[1]
    _GEMM(ROW_MAJOR, AS_IS, AS_IS, np.intc(m), np.intc(n), np.intc(k), {one}, a.ctypes, np.intc(max(k, 1)), b.ctypes,
          np.intc(max(n, 1)), {one} if add else {zero}, c[:, col:].ctypes, np.intc(max(c.shape[1], 1)))


@njit("void({t}[::1], {t}[:, ::1], int64, int64)", cache=True, error_model="numpy")
def _colsum(acc, rows, col, n):
    """acc[j] += Σ_r rows[r, col + j], for j < n."""
    for r in range(rows.shape[0]):
        for j in range(n):
            acc[j] += rows[r, col + j]


@njit("UniTuple({t}[:, ::1], 2)({t}[:, ::1], int64, int64, boolean)", cache=True, error_model="numpy")
def _flipped(s, b, t, add):
    """(Sᵀ, a buffer of (columns of S, b)) for `_product` to compute u · S as (Sᵀ · uᵀ)ᵀ for a batch u of b
    rows over t steps, where that is faster (gategraph.helpers.FLIP_AT, FLIP_ROWS, FLIP_STEPS); else no Sᵀ, and
    a buffer of (b, columns of S) where `_product` will `add` the product of SMALL multiply-adds or more (NumPy's
    np.dot writes its output, it does not add to it). Neither where the step BLAS will make the products (SciPy's
    BLAS on one thread)."""
    scipys = b * s.size >= {SMALL} and _THREADS() != 1
    if not scipys or s.size < {FLIP_AT[dtype]} or b < {FLIP_ROWS[0]} or b > {FLIP_ROWS[1]} or t < {FLIP_STEPS}:
        f = np.empty((b, s.shape[1]) if add and scipys else (0, 0), DT)
        return np.empty((0, 0), DT), f
    st = np.empty((s.shape[1], s.shape[0]), DT)
    _copy(st, 0, 0, s, 0, 0, s.shape[1], s.shape[0], True, False)
    return st, np.empty((s.shape[1], b), DT)


@njit("void({t}[:, ::1], {t}[:, ::1], {t}[:, ::1], {t}[:, ::1], {t}[:, ::1], int64, boolean)", cache=True,
      error_model="numpy")
def _product(u, s, st, f, out, col, add):
    """out = u · S, or out[:, col:col + n] += u · S if `add` (n: S's columns; out may have more, as the GRU's
    rows of z, r and the candidate), one step's product of a batch u with a stacked weight matrix S: below
    SMALL multiply-adds, or while SciPy's BLAS is on one thread, through the step BLAS on one thread, else
    through SciPy's (`np.dot`, on the pass's threads, into f and added where it adds), as (Sᵀ · uᵀ)ᵀ through f
    where `_flipped` gave Sᵀ."""
    n = s.shape[1]
    if u.shape[0] * s.size < {SMALL} or _THREADS() == 1:
        _gemm(u, s, out, col, add)
    elif st.size == 0 and not add:
        np.dot(u, s, out)
    elif st.size == 0:
        np.dot(u, s, f)
        _copy(out, 0, col, f, 0, 0, out.shape[0], n, False, add)
    else:
        np.dot(st, u.T, f)
        _copy(out, 0, col, f, 0, 0, out.shape[0], n, True, add)


@njit("void({t}[:, ::1], {t}[:, ::1], {t}[:, ::1], boolean)", cache=True, error_model="numpy")
def _dot(a, b, c, transpose):
    """C = A · B, or Aᵀ · B if `transpose`, a product over all steps (the input's products, the weights'
    gradients Σ_t ā_t zᵀ_t): through the step BLAS while SciPy's BLAS is on one thread, else `np.dot`."""
    if _THREADS() == 1:
        m, k = (a.shape[1], a.shape[0]) if transpose else (a.shape[0], a.shape[1])
        _GEMM(ROW_MAJOR, TRANSPOSED if transpose else AS_IS, AS_IS, np.intc(m), np.intc(b.shape[1]), np.intc(k), {one},
              a.ctypes, np.intc(max(a.shape[1], 1)), b.ctypes, np.intc(max(b.shape[1], 1)), {zero}, c.ctypes,
              np.intc(max(c.shape[1], 1)))
    elif transpose:
        np.dot(a.T, b, c)
    else:
        np.dot(a, b, c)

'''


def _head(dtype: str, what: str, numba: str) -> str:
    """The first lines of a helper module: its docstring, imports (`numba`: what it takes from Numba), DT."""
    return f'''"""The {what} of gategraph's generated kernels in {dtype}, made by gategraph.helpers. Do not edit:
a kernel imports this module by a name that hashes its text."""

import numpy as np
from llvmlite import ir
{numba}
from numba.extending import intrinsic

DT = np.{dtype}
'''


def _math(dtype: str) -> str:
    """The check for NaN and inf; the step, ReLU, and exp, expm1, tanh and σ as plain arithmetic that LLVM
    vectorizes (a call to libm's tanh per entry costs 30 ns; these cost a few): exp(x) = 2^k (1 + p(r)),
    r = x - k ln 2, |r| ≤ ln(2)/2, with p the Taylor polynomial of e^r - 1 to the dtype's precision and
    2^k = 2^⌊k/2⌋ · 2^(k - ⌊k/2⌋), each factor built from its bits (a normal number, however small 2^k is);
    tanh|x| = -m / (m + 2) with m = expm1(-2|x|), which neither overflows nor cancels; σ(a) = 1 / (1 + e^{-a})."""
    f, t = f"np.{dtype}", dtype
    # ln 2 = hi + lo, hi with few enough bits that k·hi is exact; x clamped to where e^x is finite
    if dtype == "float64":
        degree, lo, hi, bits, mantissa, bias = 13, -745.0, 709.0, 64, 52, 1023
        ln2 = (0.6931471803691238, 1.9082149292705877e-10)
    else:
        degree, lo, hi, bits, mantissa, bias = 7, -104.0, 88.0, 32, 23, 127
        ln2 = (0.693359375, -2.12194440e-4)
    horner = f"    p = {f}({1 / math.factorial(degree)!r})\n" + "".join(
        f"    p = p * r + {f}({1 / math.factorial(n)!r})\n" for n in range(degree - 1, 1, -1))
    one, zero = f"{f}(1.0)", f"{f}(0.0)"
    uint, exponent = f"np.uint{bits}", "0x7FF0000000000000" if dtype == "float64" else "0x7F800000"
    sign = "0x7FFFFFFFFFFFFFFF" if dtype == "float64" else "0x7FFFFFFF"  # every bit but the sign's
    return f'''{_head(dtype, "math helpers", "from numba import njit, types")}
BITS, ABS, EXPONENT = {uint}, {uint}({sign}), {uint}({exponent})  # a number's bits: |x|'s, and +inf's


@intrinsic
def _pow2(typingctx, k):
    """2^k for an integral k of DT with 2^k a normal number: the bits (k + {bias}) << {mantissa}."""

    def codegen(context, builder, signature, args):
        n = builder.fptosi(args[0], ir.IntType({bits}))
        n = builder.shl(builder.add(n, ir.Constant(n.type, {bias})), ir.Constant(n.type, {mantissa}))
        return builder.bitcast(n, args[0].type)

    return k(k), codegen


@njit(cache=True, error_model="numpy", fastmath={MATH_FASTMATH})
def _exp_parts(x):
    """(2^k, p) with e^x = 2^k (1 + p), x clamped to [{lo}, {hi}]."""
    x = min(max(x, {f}({lo})), {f}({hi}))
    k = np.floor(x * {f}(1.4426950408889634) + {f}(0.5))
    r = (x - k * {f}({ln2[0]!r})) - k * {f}({ln2[1]!r})
{horner}    p = p * r * r + r
    half = np.floor(k * {f}(0.5))
    return _pow2(half) * _pow2(k - half), p


@njit("{t}({t})", cache=True, error_model="numpy", fastmath={MATH_FASTMATH})
def _exp(x):
    s, p = _exp_parts(x)
    return s * ({one} + p)


@njit("{t}({t})", cache=True, error_model="numpy", fastmath={MATH_FASTMATH})
def _tanh(x):
    s, p = _exp_parts({f}(-2.0) * abs(x))
    m = s * p + (s - {one})
    t = -m / (m + {f}(2.0))
    return t if x >= {f}(0.0) else -t


@njit("{t}({t})", cache=True, error_model="numpy", fastmath={MATH_FASTMATH})
def _sigmoid(a):
    return {one} / ({one} + _exp(-a))


@njit("{t}({t})", cache=True, error_model="numpy")
def _step(a):
    return {one} if a > {zero} else {zero}


@njit("{t}({t})", cache=True, error_model="numpy")
def _relu(a):
    return a if a > {zero} else {zero}


@intrinsic
def _bits(typingctx, v):
    """v's bits, as the unsigned integer BITS (a bitcast: no copy, no view of an array to compile)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType({bits}))

    return types.uint{bits}(v), codegen


@njit("boolean({t}[::1])", cache=True, error_model="numpy")
def _finite(a):
    """No entry of the flat array `a` is NaN or ±inf: none has every exponent bit set (read as bits, which no
    fastmath flag can change)."""
    worst = BITS(0)
    for i in range(a.size):
        bits = _bits(a[i]) & ABS
        if bits > worst:
            worst = bits
    return worst < EXPONENT


@njit("int64(UniTuple({t}[::1], {CHECKED}), int64)", cache=True, error_model="numpy")
def _nonfinite(arrays, first):
    """first + k for the first of `arrays` (flat) that holds NaN or inf, k its position in the tuple, or -1: a
    pass checks its arrays CHECKED at a time, the last tuple filled up with empty arrays."""
    for k in range(len(arrays)):
        if not _finite(arrays[k]):
            return first + k
    return -1
'''
