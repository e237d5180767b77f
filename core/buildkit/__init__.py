"""BuildKit wire formats: the ``moby.buildkit.v1.StatusResponse`` protobuf subset and its decoder.

``buildkit_status.proto`` is a hand-written subset of moby/buildkit's control.proto (fields and numbers as
upstream); ``buildkit_status_pb2`` is generated from it with ``grpc_tools.protoc`` and committed.
"""
