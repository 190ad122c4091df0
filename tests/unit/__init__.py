"""Unit tests: pure code, milliseconds to seconds, no broker, no Flink, no kernel."""
