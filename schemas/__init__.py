"""flowattr wire formats: protobuf messages (flowattr_pb2) and their columnar codec (columns)."""
