"""flowattr command line and the embedded stack (broker, topics, Flink cluster)."""
