"""The collector: a PyFlink job (operators, wiring) over a pure attribution core.

Modules that import pyflink: kafka_connectors, *_job. Everything under
flink_jobs/attribution is pure Python + numpy and is tested without Flink.
"""
