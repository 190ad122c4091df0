"""The per-host eBPF flow exporter (capture, local workload attribution, batching,
publishing). exporter/probe.py is the only module that imports bcc."""
