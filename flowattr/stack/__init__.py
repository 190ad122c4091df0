"""The embedded stack: the Kafka-protocol broker, topics, the Flink cluster, local job runs
and the processes behind them. Knows nothing of attribution (imports schemas only)."""
