"""pytest runs every notebook in smoke mode: the kernels nbval starts inherit this variable, and
the papermill tests pass it as a parameter. Set CGAN_COURSE_MODE=classroom to test the longer mode.

Under pytest-xdist (``-n auto`` in pyproject.toml) each worker gets its share of the cores: N
workers that each ran PyTorch (and the kernels and subprocesses they start) on every core would
spin threads against each other and run slower than one process."""
import os

os.environ.setdefault("CGAN_COURSE_MODE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")

# set before anything here imports torch (so not through cgan_course.runtime.usable_cores); children inherit it
if os.environ.get("PYTEST_XDIST_WORKER"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _share = str(max(1, _cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    os.environ.setdefault("OMP_NUM_THREADS", _share)
    os.environ.setdefault("MKL_NUM_THREADS", _share)
