"""The attribution core: plain Python + numpy, no pyflink, kafka or bcc imports.

Evidence and its caveats (read before changing anything here):

* A heartbeat is a flow observed on the owner's OWN host: flow (local_ip=I, workload=W,
  start=s, end=e) proves W owned I during [s, e] by that host's clock. Only flows whose
  local workload the exporter resolved (identity file, IP map, port map) are heartbeats.
* Assumption G (minimum reuse gap, `AttributionConfig.min_reuse_gap_ms`): once released,
  an IP is not used by any other workload for at least G. Therefore two ranges of the
  same workload closer than G may be joined (nobody else can have owned the IP in the
  gap), and ranges further apart are never joined: the gap stays "no evidence".
* Clock skew: hosts' clocks agree within `skew_tolerance_ms`. A flow's start t is
  attributed to W when a W range lies within the tolerance of t and NO other workload's
  range or contested interval does; otherwise it is unattributed (CLOCK_SKEW). This is
  safe while tolerance + 2 x skew < G: a different owner's range is then always further
  than the tolerance from any instant that W did not own.
* Conflicts: two workloads claiming overlapping time on one IP (an agent bug or a race
  at reassignment) leave the overlap as a CONTESTED interval: flows starting there are
  never attributed. Best effort: conflicts are detected only among the claims seen so
  far. The ranges are a function of the set of claims, whatever their order (each
  workload's claims joined across gaps under G, then an instant in two workloads' is
  contested: ranges.py), so every attribute instance holds the same table.
* Pruning: ranges ending before the retention horizon are dropped, and flows starting
  before the horizon are EVIDENCE_EXPIRED (a pruned range could have contested them).
* IP-change events (Sonar-style) are lower-trust evidence, used only for configured
  non-workload CIDRs (load balancers), in their own table, and only up to the event
  horizon: the latest event time minus the bound on event delay (see events.py).
"""
