"""Teach Numba that a SharedTensor is an array, so every jitted function accepts one directly.

The tensor gets its own type, a subclass of ``types.Array`` with the same data model: inside
compiled code it *is* an array (indexing, slicing, ``np.sum``, ``prange``, passing it on all
work unchanged), and only the boundary differs. Unboxing asks the tensor for its NumPy view, so a
closed tensor raises its TensorError in the caller instead of handing out a stale pointer, and a
read-only tensor types as a read-only array, which Numba refuses to write at compile time.
"""
from __future__ import annotations

import weakref

from numba.core import cgutils, types
from numba.core.typing.typeof import typeof_impl
from numba.extending import NativeValue, box, lower_cast, models, register_model, unbox

from .. import errors
from .shared import SharedTensor


class SharedTensorType(types.Array):
    """Numba type of a SharedTensor argument: an Array in every respect but its boxing."""

    def __init__(self, dtype: types.Type, ndim: int, layout: str, readonly: bool = False, aligned: bool = True):
        name = f"{'readonly ' if readonly else ''}SharedTensor({dtype}, {ndim}d, {layout})"
        super().__init__(dtype, ndim, layout, readonly=readonly, name=name, aligned=aligned)

    def can_convert_to(self, typingctx: object, other: types.Type) -> object:
        # Converting to a plain array would let a dispatcher with eager signatures pick an
        # ndarray overload, whose wrapper then cannot unbox the tensor object ("can't unbox
        # array"). Refusing makes Numba compile for this type, or report a clear mismatch.
        if isinstance(other, SharedTensorType):
            return super().can_convert_to(typingctx, other)
        return None

    def __repr__(self) -> str:
        return f"SharedTensorType({self.dtype!r}, {self.ndim}, {self.layout!r}, {not self.mutable})"

    @property
    def plain(self) -> types.Array:
        """The plain array type with the same layout (what the view is unboxed as)."""
        return types.Array(self.dtype, self.ndim, self.layout, readonly=not self.mutable, aligned=self.aligned)


register_model(SharedTensorType)(models.ArrayModel)


@lower_cast(SharedTensorType, types.Array)
def _tensor_to_array(context: object, builder: object, fromty: types.Type, toty: types.Type, val: object) -> object:
    # Same data model, so the value is the array (needed where a branch unifies a tensor with
    # a plain array; Numba's own array cast assumes the two differ in layout or mutability).
    return val


# A tensor's layout never changes, and building a Numba type costs ~9 us: type each tensor once.
_types: weakref.WeakKeyDictionary[SharedTensor, SharedTensorType] = weakref.WeakKeyDictionary()


@typeof_impl.register(SharedTensor)
def _typeof_shared_tensor(tensor: SharedTensor, context: object) -> SharedTensorType:
    # Typed from the layout alone, even when closed: unboxing raises the TensorError, and there
    # the nearest Python frame is the user's call.
    found = _types.get(tensor)
    if found is None:
        try:
            array = typeof_impl(tensor._array, context)
        except Exception as exc:
            # A TensorError, not a ValueError: numba turns those into "pyobject" and a TypingError.
            raise errors.array_not_compilable(tensor._array, errors.TensorError) from exc
        if array.dtype is getattr(types, "float16", None):  # typed by numba, but not lowered
            raise errors.array_not_compilable(tensor._array, errors.TensorError)
        found = SharedTensorType(array.dtype, array.ndim, array.layout, not array.mutable, array.aligned)
        _types[tensor] = found
    return found


@unbox(SharedTensorType)
def _unbox_shared_tensor(typ: SharedTensorType, obj: object, c: object) -> NativeValue:
    builder = c.builder
    view = c.pyapi.call_method(obj, "_numba_array_", ())  # NULL with TensorError set if closed
    value = cgutils.alloca_once_value(builder, cgutils.get_null_value(c.context.get_value_type(typ)))
    failed = cgutils.alloca_once_value(builder, cgutils.true_bit)
    with builder.if_then(cgutils.is_not_null(builder, view), likely=True):
        native = c.unbox(typ.plain, view)
        # The unboxed array's meminfo holds its own reference to the view.
        c.pyapi.decref(view)
        builder.store(native.value, value)
        builder.store(native.is_error, failed)
    return NativeValue(builder.load(value), is_error=builder.load(failed))


@box(SharedTensorType)
def _box_shared_tensor(typ: SharedTensorType, val: object, c: object) -> object:
    return c.box(typ.plain, val)
