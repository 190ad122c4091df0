"""End-to-end tests: real Flink jobs, the embedded broker, and the kernel's eBPF (root)."""
