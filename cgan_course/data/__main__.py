"""python -m cgan_course.data"""
from .cli import main

main()
