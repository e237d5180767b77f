"""BuildKit wire formats: the ``moby.buildkit.v1.StatusResponse`` protobuf subset and its decoder.

``buildkit_status.proto`` is a hand-written subset of moby/buildkit's control.proto (fields and numbers as
upstream); ``buildkit_status_pb2`` (and its ``.pyi`` stub, so mypy checks the decoder strictly) is generated
from it and committed: ``python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. buildkit_status.proto``.
"""
