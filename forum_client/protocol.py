"""The ``forum.v1`` wire protocol, public, for code that speaks it directly: the forum server,
the operator tools and clients of other services on the same connection.

The SDK's own API never hands out generated types (:mod:`forum_client.wire` converts them);
this module is the one public door to them, so that nothing outside the SDK imports
``forum_client._proto``:

    >>> from forum_client.protocol import messages, services
    >>> messages.GetCheckpointRequest().ByteSize(), services.AdminStub.__name__
    (0, 'AdminStub')

- ``messages``: every message and enum of ``protos/forum/v1/forum.proto``;
- ``services``: the service stubs, servicers and ``add_*Servicer_to_server`` functions;
- :func:`call`: one unary call with the SDK's deadline and error mapping (TransportError);
- the conversions between messages and the SDK's types.
"""

from __future__ import annotations

from ._proto.forum.v1 import forum_pb2 as messages
from ._proto.forum.v1 import forum_pb2_grpc as services
from .transport import call, error_from_rpc
from .wire import envelope_from_pb, envelope_to_pb, receipt_from_pb, receipt_to_pb

__all__ = [
    "call",
    "envelope_from_pb",
    "envelope_to_pb",
    "error_from_rpc",
    "messages",
    "receipt_from_pb",
    "receipt_to_pb",
    "services",
]
