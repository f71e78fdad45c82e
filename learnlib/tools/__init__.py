"""Build tooling of the repository (not used by the course code): `python -m learnlib.tools.exercises`."""
