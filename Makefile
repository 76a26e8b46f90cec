# hpc: the README's two commands are `make run` and `make test`; both install first when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MPIEXEC := $(VENV)/bin/mpiexec
STAMP  := $(VENV)/.installed
# Every MPI test run is bounded so a deadlock fails instead of hanging CI.
MPI_TIMEOUT ?= 900

.PHONY: install run test test-unit test-mpi bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py hpc/mpi/_fused_queue.c startup/hpc-joblib.pth startup/_hpc_joblib_hook.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[mpi,dev]'
	# an editable install does not carry the start-up file that lets joblib find "hpc" anywhere (see setup.py)
	cp startup/hpc-joblib.pth "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
	touch $(STAMP)

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

test-unit: install
	$(PY) -m pytest -m "not mpi"

# The MPI-marked tests run on every rank of a real mpiexec, with the rank-agreement checks on (HPC_MPI_CHECK=1).
# A test failing on one rank aborts the job (tests/conftest.py); pytest-timeout's thread method ends a test stuck
# inside MPI (a signal would never reach Python there); the outer timeout ends a deadlocked launcher.
MPI_PYTEST = $(PY) -m pytest -m mpi -p no:cacheprovider --timeout 90 --timeout-method=thread
test-mpi: install
	for n in 1 2 3 4; do \
		echo "== MPI tests on $$n ranks =="; \
		HPC_MPI_CHECK=1 timeout $(MPI_TIMEOUT) $(MPIEXEC) -n $$n $(MPI_PYTEST) || exit 1; \
	done

# The MPI suite and the example jobs on 2 test hosts x 2 ranks, then tests/multihost (the same bits as on one
# host, each host's own local ranks). The hosts are network namespaces on this machine with MPICH's hydra launching
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
	@echo "== bits and node layout: 2 hosts x 2 ranks against 1 host x 4 =="
	HPC_MULTIHOST=1 timeout $(MPI_TIMEOUT) $(PY) -m pytest -p no:cacheprovider tests/multihost

bench: install
	$(VENV)/bin/hpc bench

lint: install
	$(VENV)/bin/ruff check hpc kernels tests scripts startup setup.py

clean:
	rm -rf $(VENV) build *.egg-info
