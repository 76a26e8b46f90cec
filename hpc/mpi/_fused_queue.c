/* The fast lane of hpc.mpi.fused, in C: queuing a sum costs one C method call.
 *
 * A fused block of 100 small sums is worth fusing only if queuing an entry costs far less than the one MPI call it
 * saves. In Python the queue method, its appends and the placeholder cost about 5x what this C method does
 * (docs/performance.md, "hpc bench mpi"). The fast lane takes sums of Python floats and float subclasses (NumPy
 * float64 scalars), NumPy float32 scalars, and ndarrays of float64, float32, int64 or int32 of at most FUSE_MAX
 * elements, C-contiguous in native byte order: their values are copied into one batch per dtype. The slow lane
 * (other dtypes, integer scalars, whose sums are exact, other ops, user ops, larger arrays) stays in Python:
 * Queue.allreduce hands any other entry to the subclass's `_queue(x, op)`.
 *
 *   Batch        the queued values of one dtype (its struct format character, `kind`), contiguous, and a hash of
 *                their structure (each entry's kind and shape); exports a writable 1-D buffer so the flush reduces
 *                them in place with one Allreduce, then marks the batch ready.
 *   FusedResult  a placeholder: (batch, index, count, like) until read, then its value: a float, the NumPy scalar
 *                type `like` of it, or an ndarray of shape `like` that is a view of the batch's reduced values (the
 *                batch is its base). `_value` is settable for the slow lane.
 *   Queue        the base of hpc.mpi.fused.Fused: `Queue(engine)`, `allreduce(x, op="sum")`, `_take()` (the batches
 *                so far), and the block's `__enter__`/`__exit__`. When a batch reaches FLUSH_BYTES, every batch is
 *                handed to the subclass's `_flush_batches(batches)` at once. Only the thread that made the queue, or
 *                that entered it since, may call them (RuntimeError otherwise). The block's end reduces the batches
 *                itself when nothing went to the slow lane and the engine is plain (its `fused_lane`): the Python
 *                calls of Fused.flush cost more than the Allreduce of a small block; any other block ends in the
 *                subclass's `flush()`.
 *
 * It reads NumPy arrays and makes results with NumPy's C API: a buffer export of the caller's array, and a slice of
 * the batch made by calling NumPy from C, each cost more than queuing a Python float does.
 *
 * The same three names exist in pure Python in hpc/mpi/_fused_queue_py.py, used where this file was not compiled.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <numpy/arrayscalars.h>

/* ---- Batch ------------------------------------------------------------------------------------------------ */

/* Arrays of more elements go to the slow lane (fusing saves per-call costs, nothing on a large array). */
#define FUSE_MAX 8192
/* A batch this large is reduced at once, in the middle of the block: fusion's memory stays bounded. */
#define FLUSH_BYTES (1 << 22)

/* The dtypes of the fast lane, by struct format character, in the order _take() returns their batches. */
#define NKINDS 4
static const char *const KINDS[NKINDS] = {"d", "f", "l", "i"};
static const Py_ssize_t ITEMSIZES[NKINDS] = {sizeof(double), sizeof(float), sizeof(long), sizeof(int)};
static const int TYPENUMS[NKINDS] = {NPY_DOUBLE, NPY_FLOAT, NPY_LONG, NPY_INT};

typedef struct {
    PyObject_HEAD
    char *data;
    int kind;                    /* index into KINDS */
    Py_ssize_t size;             /* in elements */
    Py_ssize_t capacity;
    Py_ssize_t exports;          /* live buffer views: the data must not move while MPI may write into it */
    int ready;                   /* the reduced values are in place: placeholders may read them */
    unsigned long long structure; /* FNV-1a over each entry's kind and shape: ranks must agree on it */
} Batch;

static void
batch_mix(Batch *self, unsigned long long word)
{
    self->structure = (self->structure ^ word) * 1099511628211ULL;
}

static PyTypeObject BatchType;

static int
batch_reserve(Batch *self, Py_ssize_t capacity)
{
    char *data = PyMem_Realloc(self->data, (size_t)capacity * (size_t)ITEMSIZES[self->kind]);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->data = data;
    self->capacity = capacity;
    return 0;
}

static int
batch_push(Batch *self, double value)
{
    if (self->ready || self->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "hpc.mpi fused batch: cannot append while reduced or exported");
        return -1;
    }
    if (self->size == self->capacity && batch_reserve(self, self->capacity ? 2 * self->capacity : 128) < 0)
        return -1;
    ((double *)self->data)[self->size++] = value; /* a float: only ever pushed to a batch of kind "d" */
    return 0;
}

static int
batch_push_many(Batch *self, const void *values, Py_ssize_t n)
{
    if (self->ready || self->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "hpc.mpi fused batch: cannot append while reduced or exported");
        return -1;
    }
    if (self->size + n > self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity : 128;
        while (capacity < self->size + n)
            capacity *= 2;
        if (batch_reserve(self, capacity) < 0)
            return -1;
    }
    Py_ssize_t itemsize = ITEMSIZES[self->kind];
    if (n > 0) /* an empty array may come first, before the batch has any memory */
        memcpy(self->data + self->size * itemsize, values, (size_t)(n * itemsize));
    self->size += n;
    return 0;
}

static Batch *
batch_of_kind(int kind)
{
    Batch *self = PyObject_New(Batch, &BatchType);
    if (self == NULL)
        return NULL;
    self->data = NULL;
    self->kind = kind;
    self->size = self->capacity = self->exports = 0;
    self->ready = 0;
    self->structure = 14695981039346656037ULL;
    return self;
}

/* Batch(kind="d"): an empty batch of that struct format character. */
static PyObject *
batch_new(PyTypeObject *Py_UNUSED(type), PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"kind", NULL};
    const char *kind = "d";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|s:Batch", keywords, &kind))
        return NULL;
    for (int k = 0; k < NKINDS; k++)
        if (strcmp(kind, KINDS[k]) == 0)
            return (PyObject *)batch_of_kind(k);
    PyErr_Format(PyExc_ValueError, "Batch kind must be one of d, f, l, i; got '%s'", kind);
    return NULL;
}

static void
batch_dealloc(Batch *self)
{
    PyMem_Free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
batch_append(Batch *self, PyObject *arg)
{
    if (self->kind != 0) {
        PyErr_SetString(PyExc_TypeError, "Batch.append takes floats into a batch of kind 'd' only");
        return NULL;
    }
    double value = PyFloat_AsDouble(arg);
    if (value == -1.0 && PyErr_Occurred())
        return NULL;
    if (batch_push(self, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
batch_set_ready(Batch *self, PyObject *Py_UNUSED(ignored))
{
    self->ready = 1;
    Py_RETURN_NONE;
}

static PyObject *
batch_get_structure(Batch *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->structure);
}

static PyObject *
batch_get_kind(Batch *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(KINDS[self->kind]);
}

static PyGetSetDef batch_getset[] = {
    {"structure", (getter)batch_get_structure, NULL,
     "A 64-bit hash of the queued entries' kinds and shapes (the ranks must agree on it).", NULL},
    {"kind", (getter)batch_get_kind, NULL, "The struct format character of the values: d, f, l or i.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* The value at index as a Python float or int. */
static PyObject *
batch_value(Batch *self, Py_ssize_t index)
{
    switch (self->kind) {
    case 0:
        return PyFloat_FromDouble(((double *)self->data)[index]);
    case 1:
        return PyFloat_FromDouble((double)((float *)self->data)[index]);
    case 2:
        return PyLong_FromLong(((long *)self->data)[index]);
    default:
        return PyLong_FromLong((long)((int *)self->data)[index]);
    }
}

static Py_ssize_t
batch_length(Batch *self)
{
    return self->size;
}

static PyObject *
batch_item(Batch *self, Py_ssize_t index)
{
    if (index < 0 || index >= self->size) {
        PyErr_SetString(PyExc_IndexError, "hpc.mpi fused batch index out of range");
        return NULL;
    }
    return batch_value(self, index);
}

static int
batch_getbuffer(Batch *self, Py_buffer *view, int flags)
{
    if (self->data == NULL && batch_reserve(self, 1) < 0) { /* even an empty view points at memory */
        view->obj = NULL;
        return -1;
    }
    view->obj = Py_NewRef(self);
    view->buf = self->data;
    view->len = self->size * ITEMSIZES[self->kind];
    view->readonly = 0;
    view->itemsize = ITEMSIZES[self->kind];
    view->format = (flags & PyBUF_FORMAT) ? (char *)KINDS[self->kind] : NULL;
    view->ndim = 1;
    view->shape = (flags & PyBUF_ND) ? &self->size : NULL;
    view->strides = (flags & PyBUF_STRIDES) ? &view->itemsize : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    self->exports++;
    return 0;
}

static void
batch_releasebuffer(Batch *self, Py_buffer *Py_UNUSED(view))
{
    self->exports--;
}

static PyBufferProcs batch_as_buffer = {
    (getbufferproc)batch_getbuffer,
    (releasebufferproc)batch_releasebuffer,
};

static PySequenceMethods batch_as_sequence = {
    .sq_length = (lenfunc)batch_length,
    .sq_item = (ssizeargfunc)batch_item, /* negative indices arrive with the length added */
};

static PyMethodDef batch_methods[] = {
    {"append", (PyCFunction)batch_append, METH_O, "Append one float (before the reduction)."},
    {"set_ready", (PyCFunction)batch_set_ready, METH_NOARGS,
     "Mark the values as reduced: the placeholders of this batch may now read them."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hpc.mpi._fused_queue.Batch",
    .tp_doc = "Batch(kind='d')\n--\n\nThe queued values of one dtype of a fused block, contiguous (a writable buffer).",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = batch_new,
    .tp_getset = batch_getset,
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_as_buffer = &batch_as_buffer,
    .tp_as_sequence = &batch_as_sequence,
    .tp_methods = batch_methods,
};

/* ---- FusedResult ------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *value; /* NULL until known */
    Batch *batch;    /* the fast lane's source until the value is read */
    Py_ssize_t index;
    Py_ssize_t count; /* an array's elements */
    int is_array;
    PyObject *like;   /* NULL: a Python float; a scalar: its type; an array: its shape */
} FusedResult;

static PyTypeObject FusedResultType;

static void
result_dealloc(FusedResult *self)
{
    Py_XDECREF(self->value);
    Py_XDECREF(self->batch);
    Py_XDECREF(self->like);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A view of count values of batch from index, of shape `like` (a tuple): the batch is its base. A ready batch never
   moves its data (it takes no more values). */
static PyObject *
result_view(FusedResult *self, Batch *batch, PyObject *like)
{
    npy_intp dims[NPY_MAXDIMS];
    int ndim = (int)PyTuple_GET_SIZE(like); /* at most NPY_MAXDIMS: longer shapes take the slow lane */
    for (int i = 0; i < ndim; i++)
        dims[i] = (npy_intp)PyLong_AsSsize_t(PyTuple_GET_ITEM(like, i));
    PyArray_Descr *descr = PyArray_DescrFromType(TYPENUMS[batch->kind]); /* stolen by the constructor */
    if (self->count == 0) /* nothing to share (an empty batch may have no memory at all) */
        return PyArray_NewFromDescr(&PyArray_Type, descr, ndim, dims, NULL, NULL, 0, NULL);
    PyObject *view = PyArray_NewFromDescr(&PyArray_Type, descr, ndim, dims, NULL,
                                          batch->data + self->index * ITEMSIZES[batch->kind], NPY_ARRAY_CARRAY, NULL);
    if (view != NULL && PyArray_SetBaseObject((PyArrayObject *)view, Py_NewRef((PyObject *)batch)) < 0)
        Py_CLEAR(view);
    return view;
}

/* Make the value of a ready placeholder from batch and like, which the caller holds references to. */
static PyObject *
result_make(FusedResult *self, Batch *batch, PyObject *like)
{
    if (self->is_array)
        return result_view(self, batch, like);
    if (batch->kind == 1) { /* a NumPy float32 scalar, or a subclass of it, which its type makes from one */
        PyObject *item = PyArrayScalar_New(Float);
        if (item == NULL)
            return NULL;
        PyArrayScalar_ASSIGN(item, Float, ((float *)batch->data)[self->index]);
        if (Py_TYPE(item) != (PyTypeObject *)like)
            Py_SETREF(item, PyObject_CallOneArg(like, item));
        return item;
    }
    if (like != NULL) { /* a float subclass (numpy.float64): made as float.__new__ makes one */
        /* CPython lays every subtype of float out as a PyFloatObject first: allocate an instance of the caller's
           type and set its value, as float_subtype_new does, without the type's Python-level constructor (a large
           share of the read's cost) */
        PyTypeObject *type = (PyTypeObject *)like;
        PyObject *value = type->tp_alloc(type, 0);
        if (value != NULL)
            ((PyFloatObject *)value)->ob_fval = ((double *)batch->data)[self->index];
        return value;
    }
    return PyFloat_FromDouble(((double *)batch->data)[self->index]);
}

/* Return a new reference to the value, or NULL without an exception set while it is pending. */
static PyObject *
result_peek(FusedResult *self)
{
    if (self->value == NULL && self->batch != NULL && self->batch->ready) {
        /* held here: making the value may run Python code (the constructor of a float32 subclass), which could set
           this placeholder's value, and so clear its batch and like, meanwhile */
        Batch *batch = (Batch *)Py_NewRef(self->batch);
        PyObject *like = Py_XNewRef(self->like);
        PyObject *value = result_make(self, batch, like);
        Py_DECREF(batch);
        Py_XDECREF(like);
        if (value == NULL)
            return NULL;
        if (self->value == NULL) {
            self->value = value;
            Py_CLEAR(self->batch);
            Py_CLEAR(self->like);
        } else {
            Py_DECREF(value); /* a value set during the call stands */
        }
    }
    return Py_XNewRef(self->value);
}

static PyObject *
result_get_value(FusedResult *self, void *Py_UNUSED(closure))
{
    PyObject *value = result_peek(self);
    if (value == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError,
                        "a fused result is available only after the `with comm.fused()` block ends");
    return value;
}

static PyObject *
result_get_private(FusedResult *self, void *Py_UNUSED(closure))
{
    PyObject *value = result_peek(self);
    if (value == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_AttributeError, "_value");
    return value;
}

static int
result_set_private(FusedResult *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) { /* `del r._value`: refused, as by the Python twin's property (no deleter) */
        PyErr_SetString(PyExc_AttributeError, "a fused result's _value cannot be deleted");
        return -1;
    }
    Py_XSETREF(self->value, Py_NewRef(value));
    Py_CLEAR(self->batch);
    Py_CLEAR(self->like);
    return 0;
}

static PyObject *
result_result(FusedResult *self, PyObject *Py_UNUSED(ignored))
{
    return result_get_value(self, NULL);
}

static PyObject *
result_repr(FusedResult *self)
{
    PyObject *value = result_peek(self);
    if (value == NULL)
        return PyErr_Occurred() ? NULL : PyUnicode_FromString("<hpc.mpi FusedResult pending>");
    PyObject *text = PyUnicode_FromFormat("<hpc.mpi FusedResult %R>", value);
    Py_DECREF(value);
    return text;
}

/* `.value` without the generic lookup (the type's dictionary, then the descriptor): reading every value of a block
   is part of what fusing must save, and the attribute name is the same interned string each time. */
static PyObject *str_value;

static PyObject *
result_getattro(PyObject *self, PyObject *name)
{
    if (name == str_value)
        return result_get_value((FusedResult *)self, NULL);
    return PyObject_GenericGetAttr(self, name);
}

static PyGetSetDef result_getset[] = {
    {"value", (getter)result_get_value, NULL,
     "The reduced value; raises RuntimeError inside the ``with`` block, before the fused call ran.", NULL},
    {"_value", (getter)result_get_private, (setter)result_set_private,
     "The value, or AttributeError while pending (set by the slow lane).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef result_methods[] = {
    {"result", (PyCFunction)result_result, METH_NOARGS, "Return :attr:`value` (the ``concurrent.futures`` spelling)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FusedResultType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hpc.mpi.FusedResult",
    .tp_doc = "A placeholder returned inside ``with comm.fused() as f``; ``.value`` (or ``result()``) after the block.",
    .tp_basicsize = sizeof(FusedResult),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)result_dealloc,
    .tp_repr = (reprfunc)result_repr,
    .tp_getattro = result_getattro,
    .tp_getset = result_getset,
    .tp_methods = result_methods,
};

/* ---- Queue ------------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Batch *batches[NKINDS]; /* by kind; NULL until the first value of that kind is queued */
    unsigned long owner;    /* the thread that made the queue, or that entered it since: the only one that may queue */
    PyObject *engine;       /* hpc.mpi._engine.Engine, or None */
    PyObject *entries;      /* the slow lane's entries and integer sums (lists the subclass fills) */
    PyObject *integers;
    PyObject *in_place, *sum_op; /* engine.fused_lane: set when the block's end may call MPI directly */
    PyObject *shape;        /* the last array entry's shape tuple, shared by the next entries of that shape */
    Py_ssize_t size;        /* engine.size */
} Queue;

static PyObject *str_sum, *str_x, *str_op, *str_queue, *str_flush_batches, *str_flush, *str_mismatch, *str_size,
    *str_fused_lane, *str_mpi, *str_Allreduce;

/* Queue(engine=None): a queue for the engine's communicator. With an engine whose `fused_lane` is (IN_PLACE, the
   sum op), the block's end reduces the fast lane's batches itself when nothing went to the slow lane. */
static PyObject *
queue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"engine", NULL};
    PyObject *engine = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:Queue", keywords, &engine))
        return NULL;
    Queue *self = (Queue *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->owner = PyThread_get_thread_ident();
    self->engine = Py_NewRef(engine);
    self->entries = PyList_New(0);
    self->integers = PyList_New(0);
    if (self->entries == NULL || self->integers == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->size = 1;
    if (engine != Py_None) {
        PyObject *size = PyObject_GetAttr(engine, str_size);
        PyObject *lane = size == NULL ? NULL : PyObject_GetAttr(engine, str_fused_lane);
        if (lane == NULL || (self->size = PyLong_AsSsize_t(size)) == -1) {
            Py_XDECREF(size);
            Py_XDECREF(lane);
            Py_DECREF(self);
            return NULL;
        }
        Py_DECREF(size);
        if (PyTuple_Check(lane) && PyTuple_GET_SIZE(lane) == 2) {
            self->in_place = Py_NewRef(PyTuple_GET_ITEM(lane, 0));
            self->sum_op = Py_NewRef(PyTuple_GET_ITEM(lane, 1));
        }
        Py_DECREF(lane);
    }
    return (PyObject *)self;
}

static int
queue_traverse(Queue *self, visitproc visit, void *arg)
{
    Py_VISIT(self->engine);
    Py_VISIT(self->entries);
    Py_VISIT(self->integers);
    Py_VISIT(self->in_place);
    Py_VISIT(self->sum_op);
    return 0;
}

static int
queue_clear(Queue *self)
{
    Py_CLEAR(self->engine);
    Py_CLEAR(self->entries);
    Py_CLEAR(self->integers);
    Py_CLEAR(self->in_place);
    Py_CLEAR(self->sum_op);
    Py_CLEAR(self->shape);
    return 0;
}

/* Entries from two threads would interleave in a different order on each rank, and the sums would pair up
   different entries with nothing to tell (float entries all hash alike): one thread queues. */
#define ENDED "hpc.mpi fused: this block has ended (its values are ready); queue into a new `with comm.fused()` block"

static int
queue_check_thread(Queue *self)
{
    if (PyThread_get_thread_ident() == self->owner)
        return 0;
    if (self->owner == 0) {
        PyErr_SetString(PyExc_RuntimeError, ENDED);
        return -1;
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "hpc.mpi fused: a fused block takes entries from the thread that opened it only (entries from "
                    "several threads would be queued in a different order on each rank, and wrong sums would "
                    "come back); queue from one thread");
    return -1;
}

static void
queue_dealloc(Queue *self)
{
    /* For a Python subclass, subtype_dealloc has untracked self and decrefs the heap type after this returns. */
    PyObject_GC_UnTrack(self);
    for (int k = 0; k < NKINDS; k++)
        Py_CLEAR(self->batches[k]);
    queue_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Return the queued batches, float64 first, as a tuple (empty if none), and start new ones. */
static PyObject *
queue_take_batches(Queue *self)
{
    Py_ssize_t n = 0;
    for (int k = 0; k < NKINDS; k++)
        n += self->batches[k] != NULL;
    PyObject *batches = PyTuple_New(n);
    if (batches == NULL)
        return NULL;
    n = 0;
    for (int k = 0; k < NKINDS; k++)
        if (self->batches[k] != NULL) {
            PyTuple_SET_ITEM(batches, n++, (PyObject *)self->batches[k]); /* the reference moves to the tuple */
            self->batches[k] = NULL;
        }
    return batches;
}

/* The fast lane's kind of an array's dtype, or -1: native byte order only. */
static int
kind_of_array(PyArrayObject *a)
{
    if (!PyArray_ISNOTSWAPPED(a))
        return -1;
    switch (PyArray_TYPE(a)) {
    case NPY_DOUBLE:
        return 0;
    case NPY_FLOAT:
        return 1;
    case NPY_LONG:
        return 2;
    case NPY_LONGLONG: /* numpy.longlong, int64 too where long is 64 bits */
        return sizeof(long long) == sizeof(long) ? 2 : -1;
    case NPY_INT:
        return 3;
    default:
        return -1;
    }
}

static int
is_sum(PyObject *op)
{
    if (op == NULL || op == str_sum)
        return 1;
    return PyUnicode_CheckExact(op) && PyUnicode_Compare(op, str_sum) == 0;
}

static int
is_keyword(PyObject *key, PyObject *name)
{
    return key == name || (PyUnicode_Check(key) && PyUnicode_Compare(key, name) == 0);
}

/* The shape (ndim, dims) as a tuple: the previous entry's when it is the same (blocks queue arrays of a few shapes
   over and over; a new tuple per entry was a sizeable part of queuing an array). */
static PyObject *
queue_shape(Queue *self, int ndim, const npy_intp *dims)
{
    PyObject *last = self->shape;
    if (last != NULL && PyTuple_GET_SIZE(last) == ndim) {
        int same = 1;
        for (int i = 0; same && i < ndim; i++)
            same = PyLong_AsSsize_t(PyTuple_GET_ITEM(last, i)) == (Py_ssize_t)dims[i];
        if (same)
            return Py_NewRef(last);
    }
    PyObject *shape = PyTuple_New(ndim);
    if (shape == NULL)
        return NULL;
    for (int i = 0; i < ndim; i++) {
        PyObject *n = PyLong_FromSsize_t((Py_ssize_t)dims[i]);
        if (n == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, i, n);
    }
    Py_XSETREF(self->shape, Py_NewRef(shape));
    return shape;
}

/* Parse (x, op='sum') as Python would: either by position or by keyword, each at most once. */
static PyObject *
queue_allreduce(Queue *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *x = NULL, *op = NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "allreduce() takes from 1 to 2 positional arguments but %zd were given", nargs);
        return NULL;
    }
    if (nargs >= 1)
        x = args[0];
    if (nargs == 2)
        op = args[1];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot;
        if (is_keyword(key, str_x))
            slot = &x;
        else if (is_keyword(key, str_op))
            slot = &op;
        else {
            PyErr_Format(PyExc_TypeError, "allreduce() got an unexpected keyword argument %R", key);
            return NULL;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "allreduce() got multiple values for argument %R", key);
            return NULL;
        }
        *slot = args[nargs + i];
    }
    if (x == NULL) {
        PyErr_SetString(PyExc_TypeError, "allreduce() missing required argument 'x'");
        return NULL;
    }
    if (queue_check_thread(self) < 0)
        return NULL;
    if (!is_sum(op))
        return PyObject_CallMethodObjArgs((PyObject *)self, str_queue, x, op ? op : str_sum, NULL);

    /* What the entry is: a float (a Python float, or a float subclass such as numpy.float64, rebuilt by its
       type), a NumPy float32 scalar, or a small native C-contiguous exact ndarray of a lane dtype (integer arrays
       with one dimension at least: a 0-d one is an integer scalar, whose sum is exact); anything else takes the
       slow lane. */
    int is_array = 0, kind = 0, ndim = 0;
    npy_intp dims[NPY_MAXDIMS]; /* an array's shape, copied before anything is allocated (see below) */
    PyObject *like = NULL;
    Py_ssize_t count = 0;
    const void *values = NULL; /* count values of the batch's kind; NULL: the float `scalar` */
    double scalar = 0.0;
    float single = 0.0f;
    if (PyFloat_Check(x)) {
        scalar = PyFloat_AS_DOUBLE(x);
        if (!PyFloat_CheckExact(x))
            like = Py_NewRef((PyObject *)Py_TYPE(x));
    } else if (PyArray_CheckExact(x)) {
        PyArrayObject *a = (PyArrayObject *)x;
        ndim = PyArray_NDIM(a);
        kind = kind_of_array(a);
        count = PyArray_SIZE(a);
        if (kind < 0 || count > FUSE_MAX || !PyArray_IS_C_CONTIGUOUS(a) || ndim > NPY_MAXDIMS ||
            (kind >= 2 && ndim == 0))
            return PyObject_CallMethodObjArgs((PyObject *)self, str_queue, x, op ? op : str_sum, NULL);
        is_array = 1;
        if (ndim > 0)
            memcpy(dims, PyArray_DIMS(a), (size_t)ndim * sizeof(npy_intp));
        like = queue_shape(self, ndim, dims);
        if (like == NULL)
            return NULL;
    } else if (PyArray_IsScalar(x, Float)) { /* numpy.float32, or a subclass of it */
        kind = 1;
        count = 1;
        single = PyArrayScalar_VAL(x, Float);
        values = &single;
        like = Py_NewRef((PyObject *)Py_TYPE(x));
    } else {
        return PyObject_CallMethodObjArgs((PyObject *)self, str_queue, x, op ? op : str_sum, NULL);
    }

    Batch *batch = self->batches[kind];
    if (batch == NULL) {
        batch = self->batches[kind] = batch_of_kind(kind);
        if (batch == NULL) {
            Py_XDECREF(like);
            return NULL;
        }
    }
    FusedResult *result = PyObject_New(FusedResult, &FusedResultType);
    if (result == NULL) {
        Py_XDECREF(like);
        return NULL;
    }
    result->value = NULL;
    result->batch = (Batch *)Py_NewRef(batch);
    result->index = batch->size;
    result->count = count;
    result->is_array = is_array;
    result->like = like; /* the reference moves to the placeholder */
    like = NULL;
    if (is_array) {
        /* The allocations above can run Python code (a garbage collection's callbacks and finalizers), which could
           resize x in place: its values are taken only now, and only if it is still what the placeholder says. */
        PyArrayObject *a = (PyArrayObject *)x;
        if (PyArray_NDIM(a) != ndim || (ndim > 0 && memcmp(PyArray_DIMS(a), dims, (size_t)ndim * sizeof(npy_intp))) ||
            kind_of_array(a) != kind || !PyArray_IS_C_CONTIGUOUS(a)) {
            Py_DECREF(result);
            PyErr_SetString(PyExc_RuntimeError, "hpc.mpi fused: the array changed while it was being queued");
            return NULL;
        }
        values = PyArray_DATA(a);
        if (ndim == 0) { /* shape (), as a scalar's: a 0-d array on one rank and a float on another agree */
            batch_mix(batch, 1);
        } else {
            batch_mix(batch, 2);
            for (int i = 0; i < ndim; i++)
                batch_mix(batch, (unsigned long long)dims[i] + 3);
        }
    } else {
        batch_mix(batch, 1);
    }
    if ((values != NULL ? batch_push_many(batch, values, count) : batch_push(batch, scalar)) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    if (batch->size * ITEMSIZES[kind] >= FLUSH_BYTES) { /* reduce every batch now; later entries start new ones */
        PyObject *full = queue_take_batches(self);
        PyObject *done =
            full == NULL ? NULL : PyObject_CallMethodObjArgs((PyObject *)self, str_flush_batches, full, NULL);
        Py_XDECREF(full);
        if (done == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(done);
    }
    return (PyObject *)result;
}

/* The thread that enters the block owns it from then on (a block made in one thread may be used in another). */
static PyObject *
queue_claim(Queue *self, PyObject *Py_UNUSED(ignored))
{
    self->owner = PyThread_get_thread_ident();
    Py_RETURN_NONE;
}

static PyObject *
queue_take(Queue *self, PyObject *Py_UNUSED(ignored))
{
    if (queue_check_thread(self) < 0)
        return NULL;
    return queue_take_batches(self);
}

#define FNV_PRIME 1099511628211ULL

/* MurmurHash3's 64-bit finalizer: every bit of h reaches the top 20 bits the checksum keeps (FNV's multiply carries
   a difference only upwards, so batches differing in a low bit, a float32 and an int32 batch of one length, kept the
   same top bits). hpc.mpi._fused_queue_py.fmix64 is its twin. */
static unsigned long long
fmix64(unsigned long long h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* The block's end in C, when every entry went to the fast lane and the engine lets MPI be called directly (no check
   mode, no watchdog): what Fused.flush does then, without its Python calls (they cost more than the Allreduce of a
   small block). On several ranks the float64 batch carries the checksum of every batch (hpc.mpi.fused._checksum:
   the same words, so a rank that ends its block in Python agrees), is reduced first and checked; then each other
   batch is reduced. A mismatch is reported by the subclass's `_mismatch(doubles, others)`, which raises. */
static int
queue_finish(Queue *self)
{
    Batch *batches[NKINDS];
    int empty = 1;
    for (int k = 0; k < NKINDS; k++) {
        batches[k] = self->batches[k]; /* the references move here */
        self->batches[k] = NULL;
        empty &= batches[k] == NULL;
    }
    if (empty && self->size == 1)
        return 0;
    int status = -1;
    PyObject *mpi = NULL;
    if (batches[0] == NULL && (batches[0] = batch_of_kind(0)) == NULL)
        goto done;
    Batch *doubles = batches[0];
    if (self->size > 1) {
        unsigned long long h = (doubles->structure ^ (unsigned long long)doubles->size) * FNV_PRIME;
        for (int k = 1; k < NKINDS; k++)
            if (batches[k] != NULL)
                h = (h ^ batches[k]->structure ^ ((unsigned long long)batches[k]->size << 3) ^ (unsigned long long)k) *
                    FNV_PRIME;
        h = fmix64(h);
        double word = (double)(h >> 44); /* 20 bits: its square and the sums over ranks stay exact */
        if (batch_push(doubles, word) < 0 || batch_push(doubles, word * word) < 0 || batch_push(doubles, 1.0) < 0)
            goto done;
    }
    if ((mpi = PyObject_GetAttr(self->engine, str_mpi)) == NULL)
        goto done;
    for (int k = 0; k < NKINDS; k++) {
        Batch *batch = batches[k];
        if (batch == NULL)
            continue;
        if (batch->size > 0) {
            PyObject *call[4] = {mpi, self->in_place, (PyObject *)batch, self->sum_op};
            PyObject *reduced =
                PyObject_VectorcallMethod(str_Allreduce, call, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (reduced == NULL)
                goto done;
            Py_DECREF(reduced);
        }
        batch->ready = 1;
        if (k == 0 && self->size > 1) {
            const double *v = (const double *)doubles->data + doubles->size - 3; /* sum h, sum h*h, ranks */
            if (v[1] * v[2] != v[0] * v[0]) {
                Py_ssize_t n = 0;
                for (int j = 1; j < NKINDS; j++)
                    n += batches[j] != NULL;
                PyObject *others = PyTuple_New(n);
                if (others == NULL)
                    goto done;
                n = 0;
                for (int j = 1; j < NKINDS; j++)
                    if (batches[j] != NULL)
                        PyTuple_SET_ITEM(others, n++, Py_NewRef((PyObject *)batches[j]));
                PyObject *raised =
                    PyObject_CallMethodObjArgs((PyObject *)self, str_mismatch, (PyObject *)doubles, others, NULL);
                Py_DECREF(others);
                if (raised != NULL) { /* _mismatch raises: returning is a defect of the subclass */
                    Py_DECREF(raised);
                    PyErr_SetString(PyExc_SystemError, "hpc.mpi fused: _mismatch() returned instead of raising");
                }
                goto done;
            }
        }
    }
    status = 0;
done:
    Py_XDECREF(mpi);
    for (int k = 0; k < NKINDS; k++)
        Py_XDECREF(batches[k]);
    return status;
}

static PyObject *
queue_enter(Queue *self, PyObject *Py_UNUSED(ignored))
{
    self->owner = PyThread_get_thread_ident(); /* the thread that opens the block queues into it */
    return Py_NewRef(self);
}

static int
is_empty_list(PyObject *list)
{
    return list != NULL && PyList_CheckExact(list) && PyList_GET_SIZE(list) == 0;
}

/* Drop what a block that raised had queued: the batches and the slow lane's lists (emptied in place), so that the
   next block on the same object starts empty instead of reducing them with its own. */
static int
queue_discard(Queue *self)
{
    for (int k = 0; k < NKINDS; k++)
        Py_CLEAR(self->batches[k]);
    PyObject *lists[2] = {self->entries, self->integers};
    for (int i = 0; i < 2; i++)
        if (lists[i] != NULL && PyList_Check(lists[i]) && PyList_SetSlice(lists[i], 0, PyList_GET_SIZE(lists[i]), NULL) < 0)
            return -1;
    return 0;
}

/* __exit__(exc_type, exc, tb): run the queued reductions unless the block raised (then drop them); the common block
   (fast lane only, a plain engine) in C, any other through the subclass's `flush()`. */
static PyObject *
queue_exit(Queue *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "__exit__() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    int status = 0;
    if (args[1] != Py_None) {
        status = queue_discard(self);
    }
    else if (self->in_place != NULL && is_empty_list(self->entries) && is_empty_list(self->integers)) {
        status = queue_check_thread(self) < 0 || queue_finish(self) < 0 ? -1 : 0;
    }
    else {
        PyObject *done = PyObject_CallMethodNoArgs((PyObject *)self, str_flush);
        status = done == NULL ? -1 : 0;
        Py_XDECREF(done);
    }
    self->owner = 0; /* ended: a later allreduce on this object raises instead of queueing into nothing */
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMemberDef queue_members[] = {
    {"_engine", T_OBJECT, offsetof(Queue, engine), 0, "The engine of the block's communicator (or None)."},
    {"_entries", T_OBJECT, offsetof(Queue, entries), 0, "The slow lane's entries (a list the subclass fills)."},
    {"_integers", T_OBJECT, offsetof(Queue, integers), 0, "The exact integer sums (a list the subclass fills)."},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef queue_methods[] = {
    {"allreduce", (PyCFunction)(void (*)(void))queue_allreduce, METH_FASTCALL | METH_KEYWORDS,
     "allreduce(x, op='sum')\n--\n\nQueue an allreduce of ``x`` and return its placeholder."},
    {"_claim", (PyCFunction)queue_claim, METH_NOARGS,
     "Make the calling thread the one that may queue (called when the block is entered)."},
    {"_take", (PyCFunction)queue_take, METH_NOARGS,
     "Return the queued batches, float64 first, as a tuple (empty if none), and start new ones."},
    {"__enter__", (PyCFunction)queue_enter, METH_NOARGS, "Claim the block for the calling thread; return it."},
    {"__exit__", (PyCFunction)(void (*)(void))queue_exit, METH_FASTCALL,
     "Run the queued reductions unless the block raised (then drop them)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject QueueType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hpc.mpi._fused_queue.Queue",
    .tp_doc = "Queues small sums of the lane's dtypes in C; hands every other entry to ``self._queue(x, op)``.",
    .tp_basicsize = sizeof(Queue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = queue_new,
    .tp_dealloc = (destructor)queue_dealloc,
    .tp_traverse = (traverseproc)queue_traverse,
    .tp_clear = (inquiry)queue_clear,
    .tp_methods = queue_methods,
    .tp_members = queue_members,
};

/* ---- module ----------------------------------------------------------------------------------------------- */

static struct PyModuleDef fused_queue_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hpc.mpi._fused_queue",
    .m_doc = "The C fast lane of hpc.mpi.fused (Batch, FusedResult, Queue).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fused_queue(void)
{
    import_array(); /* NumPy's C API: returns NULL with ImportError set if numpy cannot be imported */
    if (PyType_Ready(&BatchType) < 0 || PyType_Ready(&FusedResultType) < 0 || PyType_Ready(&QueueType) < 0)
        return NULL;
    str_sum = PyUnicode_InternFromString("sum");
    str_x = PyUnicode_InternFromString("x");
    str_op = PyUnicode_InternFromString("op");
    str_queue = PyUnicode_InternFromString("_queue");
    str_flush_batches = PyUnicode_InternFromString("_flush_batches");
    str_flush = PyUnicode_InternFromString("flush");
    str_value = PyUnicode_InternFromString("value");
    str_mismatch = PyUnicode_InternFromString("_mismatch");
    str_size = PyUnicode_InternFromString("size");
    str_fused_lane = PyUnicode_InternFromString("fused_lane");
    str_mpi = PyUnicode_InternFromString("mpi");
    str_Allreduce = PyUnicode_InternFromString("Allreduce");
    if (str_sum == NULL || str_x == NULL || str_op == NULL || str_queue == NULL || str_flush_batches == NULL ||
        str_flush == NULL || str_mismatch == NULL || str_size == NULL || str_fused_lane == NULL || str_mpi == NULL ||
        str_Allreduce == NULL || str_value == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&fused_queue_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Batch", (PyObject *)&BatchType) < 0 ||
        PyModule_AddObjectRef(module, "FusedResult", (PyObject *)&FusedResultType) < 0 ||
        PyModule_AddObjectRef(module, "Queue", (PyObject *)&QueueType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
