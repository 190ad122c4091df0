"""The collector: a PyFlink job (operators, wiring) over a pure attribution core.

Modules that import pyflink: attribution_job, environment, kafka_connectors (the import
contract in tests/unit/test_layers.py holds it). Everything under
flink_jobs/attribution is pure Python + numpy and is tested without Flink.
"""
