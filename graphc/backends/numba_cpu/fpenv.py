"""Flush-to-zero for compiled steps: the x86 MXCSR FTZ and DAZ bits.

Training drives some values subnormal (softmax probabilities of confidently
wrong classes, their gradients), and every arithmetic operation on a
subnormal float takes a microcode assist of about a hundred cycles.  On the
spiral step this made the step 1.8x slower after a few thousand steps.  XLA
(and so JAX) flushes subnormals to zero on the CPU for the same reason.

`run` of a numba module sets FTZ|DAZ for the duration of the call and puts
the caller's MXCSR back afterwards, so NumPy outside graphc is unaffected.
Elsewhere than x86-64 these are no-ops.
"""
import platform

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir

FTZ_DAZ = 0x8040  # MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)
X86 = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _mxcsr_swap(typingctx, new):
    """Set MXCSR to `new` and return its previous value (LLVM's stmxcsr/ldmxcsr)."""
    def codegen(context, builder, signature, args):
        i32, i8p = ir.IntType(32), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p])
        stmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
        ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
        old_slot, new_slot = cgutils.alloca_once(builder, i32), cgutils.alloca_once(builder, i32)
        builder.call(stmxcsr, [builder.bitcast(old_slot, i8p)])
        builder.store(builder.trunc(args[0], i32), new_slot)
        builder.call(ldmxcsr, [builder.bitcast(new_slot, i8p)])
        return builder.zext(builder.load(old_slot), ir.IntType(64))
    return types.int64(types.int64), codegen


@njit(cache=True, nogil=True)
def _flush_on():
    old = _mxcsr_swap(0)
    _mxcsr_swap(old | FTZ_DAZ)
    return old


@njit(cache=True, nogil=True)
def _restore(old):
    _mxcsr_swap(old)


def flush_subnormals():
    """Turn FTZ|DAZ on in this thread; returns what `restore` needs."""
    return _flush_on() if X86 else None


def restore(state):
    if state is not None:
        _restore(state)
