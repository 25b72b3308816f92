"""pytest runs every notebook in smoke mode: the kernels nbval starts inherit this variable, and
the papermill tests pass it as a parameter. Set CGAN_COURSE_MODE=classroom to test the longer mode."""
import os

os.environ.setdefault("CGAN_COURSE_MODE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
