/* The fast lane of hpc.mpi.fused, in C: queuing a Python float sum costs one C method call.
 *
 * A fused block of 100 scalar sums is worth fusing only if queuing an entry costs far less than the one MPI call it
 * saves (a few microseconds). In Python the queue method, its two appends and the placeholder cost about 0.17 us
 * per entry; here about 0.03 us. The slow lane (arrays, other ops, user ops) stays in Python: Queue.allreduce hands
 * any entry that is not a Python float summed to the subclass's `_queue(x, op)`.
 *
 *   Batch        the queued floats, contiguous doubles; exports a writable 1-D "d" buffer so the flush reduces
 *                them in place with one Allreduce, then marks the batch ready.
 *   FusedResult  a placeholder: (batch, index) until read, then its value. `_value` is settable for the slow lane.
 *   Queue        the base of hpc.mpi.fused.Fused: `allreduce(x, op="sum")` and `_take()` (the batch so far).
 *
 * The same three names exist in pure Python in hpc/mpi/_fused_queue_py.py, used where this file was not compiled.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* ---- Batch ------------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    double *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
    Py_ssize_t exports; /* live buffer views: the data must not move while MPI may write into it */
    int ready;          /* the reduced values are in place: placeholders may read them */
} Batch;

static PyTypeObject BatchType;

static int
batch_reserve(Batch *self, Py_ssize_t capacity)
{
    double *data = PyMem_Realloc(self->data, (size_t)capacity * sizeof(double));
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
    self->data[self->size++] = value;
    return 0;
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
    return PyFloat_FromDouble(self->data[index]);
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
    view->len = self->size * (Py_ssize_t)sizeof(double);
    view->readonly = 0;
    view->itemsize = sizeof(double);
    view->format = (flags & PyBUF_FORMAT) ? "d" : NULL;
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
    .tp_doc = "The queued Python floats of a fused block, as contiguous float64 (a writable buffer).",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
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
} FusedResult;

static PyTypeObject FusedResultType;

static void
result_dealloc(FusedResult *self)
{
    Py_XDECREF(self->value);
    Py_XDECREF(self->batch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Return a new reference to the value, or NULL without an exception set while it is pending. */
static PyObject *
result_peek(FusedResult *self)
{
    if (self->value == NULL && self->batch != NULL && self->batch->ready) {
        self->value = PyFloat_FromDouble(self->batch->data[self->index]);
        if (self->value == NULL)
            return NULL;
        Py_CLEAR(self->batch);
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
    .tp_getset = result_getset,
    .tp_methods = result_methods,
};

/* ---- Queue ------------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Batch *batch; /* NULL until the first float is queued */
} Queue;

static PyObject *str_sum, *str_x, *str_op, *str_queue;

static void
queue_dealloc(Queue *self)
{
    /* For a Python subclass, subtype_dealloc has untracked self and decrefs the heap type after this returns. */
    Py_CLEAR(self->batch);
    Py_TYPE(self)->tp_free((PyObject *)self);
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
    if (!PyFloat_CheckExact(x) || !is_sum(op))
        return PyObject_CallMethodObjArgs((PyObject *)self, str_queue, x, op ? op : str_sum, NULL);

    if (self->batch == NULL) {
        self->batch = (Batch *)PyType_GenericNew(&BatchType, NULL, NULL);
        if (self->batch == NULL)
            return NULL;
    }
    FusedResult *result = PyObject_New(FusedResult, &FusedResultType);
    if (result == NULL)
        return NULL;
    result->value = NULL;
    result->batch = (Batch *)Py_NewRef(self->batch);
    result->index = self->batch->size;
    if (batch_push(self->batch, PyFloat_AS_DOUBLE(x)) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    return (PyObject *)result;
}

static PyObject *
queue_take(Queue *self, PyObject *Py_UNUSED(ignored))
{
    Batch *batch = self->batch;
    self->batch = NULL;
    if (batch == NULL)
        Py_RETURN_NONE;
    return (PyObject *)batch;
}

static PyMethodDef queue_methods[] = {
    {"allreduce", (PyCFunction)(void (*)(void))queue_allreduce, METH_FASTCALL | METH_KEYWORDS,
     "allreduce(x, op='sum')\n--\n\nQueue an allreduce of ``x`` and return its placeholder."},
    {"_take", (PyCFunction)queue_take, METH_NOARGS,
     "Return the batch of queued floats (None if there is none) and start a new one."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject QueueType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hpc.mpi._fused_queue.Queue",
    .tp_doc = "Queues Python float sums in C; hands every other entry to ``self._queue(x, op)``.",
    .tp_basicsize = sizeof(Queue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)queue_dealloc,
    .tp_methods = queue_methods,
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
    if (PyType_Ready(&BatchType) < 0 || PyType_Ready(&FusedResultType) < 0 || PyType_Ready(&QueueType) < 0)
        return NULL;
    str_sum = PyUnicode_InternFromString("sum");
    str_x = PyUnicode_InternFromString("x");
    str_op = PyUnicode_InternFromString("op");
    str_queue = PyUnicode_InternFromString("_queue");
    if (str_sum == NULL || str_x == NULL || str_op == NULL || str_queue == NULL)
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
