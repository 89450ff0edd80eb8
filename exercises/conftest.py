"""pytest in exercises/ runs test_assignments.py only (the Makefile's test runs it after the lessons, whose models
the exercises use). The notebooks here are executed by nbgrader's autograder, not collected by nbval."""
collect_ignore_glob = ["*.ipynb", "*/*.ipynb"]
