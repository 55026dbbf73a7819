"""Benchmarks; a package so that ``benchmarks.reproduce`` imports without sys.path edits.

The scripts here still run as files (``python benchmarks/<script>.py``).
"""
