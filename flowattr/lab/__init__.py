"""The lab: the fleet simulator with ground truth, the evaluation that scores the engine and
the job against it, the benchmarks and the demos."""
