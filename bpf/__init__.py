"""BPF C sources, shipped as package data and loaded by path (see exporter/probe.py)."""
