"""The fast Submission decoder never disagrees with the generated parser.

The fast path reads signed bytes by hand, so a disagreement would let an author sign one
thing and have members read another.  Every body (well formed, uniform, mixed, or mutated
byte by byte) must decode to exactly what the generated message says, or be refused by both.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.errors import InvalidInputError

SUBMISSION = e.PAYLOAD_TYPES[e.Submission]
MIN = e._FAST_DECODE_MIN

text = st.text(max_size=12)
hexes = st.text(alphabet="0123456789abcdef", min_size=1, max_size=70)
items = st.builds(
    e.SignalItem,
    st.sampled_from(["md5", "pdq", "url", ""]) | text,
    hexes | text.filter(bool),
    st.lists(st.sampled_from(["behaviour:a", "entity:b"]) | text, max_size=3).map(tuple),
    st.sampled_from(["", "image", "video"]) | text,
    st.none() | st.integers(0, 2**32 - 1),
)


def _slow(body: bytes) -> e.Body:
    message = pb.Submission()
    message.ParseFromString(body)
    return e._decode_message(message)


def _both(body: bytes) -> tuple[object, object]:
    try:
        fast: object = e.decode(SUBMISSION, body)
    except InvalidInputError:
        fast = "refused"
    try:
        slow: object = _slow(body)
        if not pb.Submission.FromString(body).HasField("header"):
            slow = "refused"
    except Exception:
        slow = "refused"
    return fast, slow


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=items,
    values=st.lists(hexes, min_size=MIN, max_size=MIN + 8),
    others=st.lists(items, max_size=4),
    scope=text,
    mutations=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
)
def test_fast_decode_equals_the_generated_parser(
    first: e.SignalItem,
    values: list[str],
    others: list[e.SignalItem],
    scope: str,
    mutations: list[tuple[int, int]],
) -> None:
    uniform = [
        e.SignalItem(first.type, v, first.labels, first.content_type, first.quality) for v in values
    ]
    header = e.Header("o", "m", b"k" * 32, 1, 0)
    body = bytearray(e.encode(e.Submission(header, (*uniform, *others), scope)))
    for position, byte in mutations:
        body[position % len(body)] = byte
    fast, slow = _both(bytes(body))
    assert fast == slow


def test_a_misaligned_tail_takes_the_generated_path() -> None:
    """The uniform-batch guess can end inside a field: its tail check must not read past
    the end (found by the property above)."""
    assert not e._only_scope_fields(b"\xc2\x80\xc2\x80\xf0\x90\x80\x80\xf0\x90\x80\x80")
    assert not e._only_scope_fields(b"\x1a\x05ab")
    assert e._only_scope_fields(b"\x1a\x01g\xf8\x01\x05\x82\x02\x02ab")
