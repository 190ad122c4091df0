"""Component tests: one part for real (the engine over a simulated fleet, the embedded broker and CLI,
the broadcast-state store with a fake state), no Flink job."""
