"""Tests for hpc.cuda device discovery: never raising, cached, and a fake driver standing in for a GPU."""

from __future__ import annotations

import json
import sys
import types

import pytest

from hpc import cuda
from hpc.cuda import _driver, device


@pytest.fixture(autouse=True)
def _fresh_probe(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HPC_DEVICE", raising=False)
    device._clear_cache()
    yield
    device._clear_cache()


class _FakeDevice:
    """Stands in for pycuda.driver.Device; has no make_context, so a discovery that made one would fail."""

    def __init__(self, index: int) -> None:
        self.index = index

    def name(self) -> str:
        return f"Fake GPU {self.index}"

    def compute_capability(self) -> tuple[int, int]:
        return (9, 0)

    def total_memory(self) -> int:
        return 80 * 2**30

    def get_attribute(self, attr: str) -> int:
        return {"MULTIPROCESSOR_COUNT": 132, "CLOCK_RATE": 1_980_000}[attr]

    def pci_bus_id(self) -> str:
        return f"0000:{0x17 + self.index:02x}:00.0"


def _fake_driver(count: int, init_error: Exception | None = None) -> types.SimpleNamespace:
    def init() -> None:
        if init_error is not None:
            raise init_error

    fake_device = type("Device", (_FakeDevice,), {"count": staticmethod(lambda: count)})
    attrs = types.SimpleNamespace(MULTIPROCESSOR_COUNT="MULTIPROCESSOR_COUNT", CLOCK_RATE="CLOCK_RATE")
    return types.SimpleNamespace(init=init, Device=fake_device, device_attribute=attrs)


def _use_driver(monkeypatch: pytest.MonkeyPatch, driver: object, reason: str = "") -> None:
    monkeypatch.setattr(_driver, "load", lambda: (driver, reason))


def test_no_gpu_here_means_empty_and_a_reason() -> None:
    """Without a usable GPU, discovery returns False, 0 and [] with a reason, and never raises."""
    if cuda.is_available():
        pytest.skip("a CUDA GPU is usable on this machine")
    assert cuda.device_count() == 0
    assert cuda.devices() == []
    assert cuda.unavailable_reason()


def test_device_cpu_disables_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    """HPC_DEVICE=cpu hides every GPU, even one the driver would list, and says so."""
    _use_driver(monkeypatch, _fake_driver(2))
    monkeypatch.setenv("HPC_DEVICE", "cpu")
    assert cuda.is_available() is False
    assert (cuda.device_count(), cuda.devices()) == (0, [])
    assert "HPC_DEVICE" in cuda.unavailable_reason()


def test_bad_device_variable_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad HPC_DEVICE makes is_available False with the config error as the reason, instead of raising."""
    monkeypatch.setenv("HPC_DEVICE", "tpu")
    assert cuda.is_available() is False
    assert "HPC_DEVICE" in cuda.unavailable_reason() and "'tpu'" in cuda.unavailable_reason()


@pytest.fixture
def fresh_imports(monkeypatch: pytest.MonkeyPatch):
    """Make hpc._optional forget pycuda, so a simulated import failure is tried, then forgotten again."""
    from hpc import _optional

    def forget() -> None:
        for name in ("pycuda", "pycuda.driver"):
            _optional._cache.pop(name, None)
            _optional._errors.pop(name, None)

    forget()
    yield monkeypatch
    monkeypatch.undo()
    forget()


def test_missing_pycuda_reason(fresh_imports: pytest.MonkeyPatch) -> None:
    """When pycuda cannot be imported, the reason says it is not installed and how to install it."""
    fresh_imports.setitem(sys.modules, "pycuda", None)
    assert cuda.is_available() is False
    assert cuda.unavailable_reason() == "pycuda is not installed (pip install pycuda)"


def test_missing_driver_reason(fresh_imports: pytest.MonkeyPatch) -> None:
    """When pycuda imports but pycuda.driver (libcuda) does not, the reason starts with 'no CUDA driver'."""
    fresh_imports.setitem(sys.modules, "pycuda", types.ModuleType("pycuda"))
    fresh_imports.setitem(sys.modules, "pycuda.driver", None)
    assert cuda.is_available() is False
    assert cuda.unavailable_reason().startswith("no CUDA driver: ")
    assert "pycuda.driver" in cuda.unavailable_reason()


def test_fake_driver_devices_are_described(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each device the driver lists becomes a DeviceInfo with its properties, in ordinal order."""
    _use_driver(monkeypatch, _fake_driver(2))
    assert cuda.is_available() is True
    assert cuda.device_count() == 2
    assert cuda.unavailable_reason() == ""
    first, second = cuda.devices()
    assert first == cuda.DeviceInfo(0, "Fake GPU 0", (9, 0), 80 * 2**30, 132, 1_980_000, "0000:17:00.0")
    assert second.index == 1 and second.pci_bus_id == "0000:18:00.0"
    assert json.loads(json.dumps(first.as_dict()))["compute_capability"] == [9, 0]
    assert "sm_90" in str(first) and "80.0 GiB" in str(first)
    with pytest.raises(AttributeError):
        first.name = "changed"  # type: ignore[misc]


def test_zero_devices_and_failed_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver with no devices, or whose cuInit fails, gives False and a reason naming the cause."""
    _use_driver(monkeypatch, _fake_driver(0))
    assert cuda.is_available() is False
    assert cuda.unavailable_reason() == "driver found but 0 devices"
    device._clear_cache()
    error = RuntimeError("cuInit failed: no CUDA-capable device is detected")
    _use_driver(monkeypatch, _fake_driver(1, error))
    assert cuda.is_available() is False
    assert "cuInit failed: no CUDA-capable device" in cuda.unavailable_reason()


def test_result_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    """is_available() is computed once per process; _clear_cache() makes the next call look again."""
    monkeypatch.setenv("HPC_DEVICE", "cpu")
    assert cuda.is_available() is False
    _use_driver(monkeypatch, _fake_driver(1))
    monkeypatch.setenv("HPC_DEVICE", "auto")
    assert cuda.is_available() is False
    device._clear_cache()
    assert cuda.is_available() is True


@pytest.mark.gpu
def test_real_gpus_have_names_and_memory() -> None:
    """On a GPU machine every device has a name, a compute capability of at least 3.0 and memory."""
    found = cuda.devices()
    assert len(found) == cuda.device_count() >= 1
    for index, info in enumerate(found):
        assert info.index == index
        assert isinstance(info.name, str) and info.name
        assert info.compute_capability >= (3, 0)
        assert info.total_memory > 0
        assert info.multiprocessor_count > 0
        assert info.pci_bus_id
