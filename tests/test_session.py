"""The sans-IO session, both roles: binds, sequence numbers, window, timers, unbind, the
permission table and hostile input. No sockets and no sleeps: time is passed in."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.constants import MAX_SEQUENCE_NUMBER, RESPONSE_BIT, CommandId, Status
from gateway.smpp.errors import DecodeError, EncodeError, LocalProtocolError, WindowFull
from gateway.smpp.pdu import (
    PDU_CLASSES,
    Bind,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode,
    encode,
)
from gateway.smpp.session import (
    BOUND_STATES,
    BindFailed,
    BindRequested,
    BindType,
    Bound,
    Event,
    LinkFailed,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    State,
    Unbound,
    UnexpectedResponse,
)
from tests.strategies import (
    ConnectionPair,
    byte_streams,
    chunked,
    decode_all,
    frame,
    fuzz_settings,
    mutated_frames,
    request_pdus,
)

CONFIG = SessionConfig(
    window=3, response_timeout=60.0, enquire_link_interval=30.0, bind_timeout=30.0
)

BIND_RESP = {
    BindType.TX: BindTransmitterResp,
    BindType.RX: BindReceiverResp,
    BindType.TRX: BindTransceiverResp,
}


def bound_pair(
    bind_type: BindType = BindType.TRX, config: SessionConfig = CONFIG, now: float = 0.0
) -> ConnectionPair:
    pair = ConnectionPair(config, now=now)
    pair.bind(bind_type)
    return pair


def submit(pair: ConnectionPair, context: object = None, now: float | None = None) -> SubmitSm:
    pdu = SubmitSm(destination_addr="447700900123", short_message=b"hi")
    pair.esme.send_request(pdu, pair.now if now is None else now, context)
    return pdu


def of_type(events: list[Event], cls: type[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, cls)]


# -- bind ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bind_type", list(BindType))
def test_bind_succeeds_and_both_sides_learn_the_others_system_id(bind_type: BindType) -> None:
    pair = ConnectionPair(CONFIG)
    ex = pair.bind(bind_type, system_id="esme1", password="pw", smsc_system_id="SMSC1")
    assert ex.esme == [Bound(bind_type, "SMSC1")]
    assert isinstance(ex.smsc[0], BindRequested) and ex.smsc[0].bind_type is bind_type
    assert ex.smsc[1:] == [Bound(bind_type, "esme1")]
    bound_state = {BindType.TX: State.BOUND_TX, BindType.RX: State.BOUND_RX}
    expected = bound_state.get(bind_type, State.BOUND_TRX)
    assert pair.esme.state is pair.smsc.state is expected
    assert (pair.esme.system_id, pair.smsc.system_id) == ("SMSC1", "esme1")
    bind_pdu, resp = pair.esme_sent[0], pair.smsc_sent[0]
    assert isinstance(bind_pdu, Bind)
    assert (bind_pdu.sequence_number, bind_pdu.password) == (1, "pw")
    assert resp == BIND_RESP[bind_type](sequence_number=1, system_id="SMSC1")


BIND_REFUSALS = [
    Status.RBINDFAIL,
    Status.RINVPASWD,
    Status.RINVSYSID,
    Status.RALYBND,
    Status.RSYSERR,
    Status.RTHROTTLED,
    Status.RINVSYSTYP,
    0x00000400,  # vendor-specific
]


@pytest.mark.parametrize("status", BIND_REFUSALS, ids=hex)
def test_refused_bind_reports_bind_failed_with_the_status(status: int) -> None:
    pair = ConnectionPair(CONFIG)
    pair.esme.bind(BindType.TRX, 0.0, system_id="esme1", password="wrong")
    (requested,) = pair.shuttle().smsc
    assert isinstance(requested, BindRequested)
    pair.smsc.reject_bind(requested.pdu, status)
    ex = pair.shuttle()
    assert ex.esme == [BindFailed(status)]
    assert pair.esme.state is State.CLOSED
    assert pair.esme.next_deadline() is None
    assert pair.smsc.state is State.OPEN  # the SMSC waits for another try


def test_bind_answered_with_generic_nack_fails() -> None:
    esme = Session(Role.ESME, CONFIG)
    seq = esme.bind(BindType.TX, 0.0, system_id="a", password="b")
    events = esme.receive_data(encode(GenericNack(sequence_number=seq, command_status=3)), 1.0)
    assert events == [BindFailed(Status.RINVCMDID)]
    assert esme.state is State.CLOSED


def test_smsc_accepts_a_second_try_after_a_refused_bind() -> None:
    pair = ConnectionPair(CONFIG)
    pair.esme.bind(BindType.TRX, 0.0, system_id="esme1", password="wrong")
    (requested,) = pair.shuttle().smsc
    assert isinstance(requested, BindRequested)
    pair.smsc.reject_bind(requested.pdu, Status.RINVPASWD)
    pair.shuttle()
    pair.esme = Session(Role.ESME, CONFIG, pair.now)  # the ESME tries again on the stream
    ex = pair.bind(BindType.TRX, password="right")
    assert ex.esme == [Bound(BindType.TRX, "SMSC1")]


def test_bind_not_answered_within_bind_timeout_fails_the_link() -> None:
    pair = ConnectionPair(CONFIG, now=100.0)
    pair.esme.bind(BindType.TRX, 100.0, system_id="esme1", password="pw")
    pair.shuttle()  # the SMSC sees the bind and never answers
    assert pair.esme.next_deadline() == 130.0
    assert pair.esme.handle_timer(129.99) == []
    events = pair.esme.handle_timer(130.0)
    assert events[0] == BindFailed(None)
    assert isinstance(events[1], LinkFailed) and len(events) == 2
    assert pair.esme.state is State.CLOSED
    assert pair.esme.next_deadline() is None
    late = encode(BindTransceiverResp(sequence_number=1, system_id="SMSC1"))
    assert pair.esme.receive_data(late, 131.0) == []


def test_smsc_closes_a_connection_that_does_not_bind_within_bind_timeout() -> None:
    smsc = Session(Role.SMSC, CONFIG, now=100.0)
    assert smsc.next_deadline() == 130.0
    assert smsc.receive_data(encode(EnquireLink(sequence_number=1)), 120.0) == []
    assert smsc.handle_timer(129.99) == []
    events = smsc.handle_timer(130.0)
    assert len(events) == 1 and isinstance(events[0], LinkFailed)
    assert smsc.state is State.CLOSED


def test_smsc_bind_timeout_is_cancelled_by_an_accepted_bind() -> None:
    pair = ConnectionPair(CONFIG, now=0.0)
    pair.now = 20.0
    pair.bind()
    assert pair.smsc.next_deadline() == 50.0  # the keep-alive, not the bind timeout at 30
    assert of_type(pair.smsc.handle_timer(30.0), LinkFailed) == []
    assert pair.smsc.state is State.BOUND_TRX


# -- sequence numbers ---------------------------------------------------------------------


def test_sequence_numbers_start_at_1_and_count_up() -> None:
    pair = bound_pair()
    assert [submit(pair).sequence_number for _ in range(3)] == [2, 3, 4]
    assert pair.esme_sent[0].sequence_number == 1


def test_sequence_number_wraps_from_0x7fffffff_to_1() -> None:
    pair = bound_pair()
    pair.esme._next_seq = MAX_SEQUENCE_NUMBER - 1
    seqs = [submit(pair).sequence_number for _ in range(3)]
    assert seqs == [MAX_SEQUENCE_NUMBER - 1, MAX_SEQUENCE_NUMBER, 1]
    assert [p.sequence_number for p in decode_all(pair.esme.data_to_send())] == seqs


def test_sequence_number_after_a_wrap_skips_one_still_in_flight() -> None:
    pair = bound_pair(config=SessionConfig(window=10))
    assert submit(pair).sequence_number == 2  # left unanswered
    pair.esme._next_seq = MAX_SEQUENCE_NUMBER
    seqs = [submit(pair).sequence_number for _ in range(3)]
    assert seqs == [MAX_SEQUENCE_NUMBER, 1, 3]


# -- window -------------------------------------------------------------------------------


def test_request_past_the_window_raises_window_full_and_queues_nothing() -> None:
    pair = bound_pair()
    for _ in range(3):
        submit(pair)
    assert (pair.esme.window_free, pair.esme.in_flight) == (0, 3)
    with pytest.raises(WindowFull):
        submit(pair)
    assert len(decode_all(pair.esme.data_to_send())) == 3
    assert pair.esme.in_flight == 3


def test_enquire_link_and_unbind_are_sent_with_a_full_window() -> None:
    pair = bound_pair()
    for _ in range(3):
        submit(pair)
    pair.esme.send_request(EnquireLink(), 0.0)
    pair.esme.unbind(0.0)
    assert [p.name for p in decode_all(pair.esme.data_to_send())][-2:] == ["enquire_link", "unbind"]


def test_a_response_frees_its_place_in_the_window() -> None:
    pair = bound_pair()
    requests = [submit(pair, context=f"msg{i}", now=1.0 + i) for i in range(3)]
    first = pair.shuttle().smsc[0]
    assert isinstance(first, RequestReceived)
    response = first.pdu.make_response(message_id="m-1")
    pair.smsc.send_response(response)
    ex = pair.shuttle(now=5.0)
    assert ex.esme == [ResponseReceived(requests[0], response, "msg0", 1.0)]
    assert pair.esme.window_free == 1
    submit(pair)
    assert pair.esme.window_free == 0


def test_a_generic_nack_frees_the_window_place_of_the_request_it_names() -> None:
    pair = bound_pair()
    requests = [submit(pair, context=i) for i in range(3)]
    pair.shuttle()
    nack = GenericNack(sequence_number=requests[1].sequence_number, command_status=Status.RSYSERR)
    pair.smsc.send_response(nack)
    ex = pair.shuttle()
    assert ex.esme == [ResponseReceived(requests[1], nack, 1, 0.0)]
    assert (pair.esme.window_free, pair.esme.in_flight) == (1, 2)


def test_timeouts_free_the_window() -> None:
    pair = bound_pair()
    requests = [submit(pair, context=i, now=0.0) for i in range(3)]
    assert pair.esme.window_free == 0
    events = pair.esme.handle_timer(60.0)
    assert events == [RequestTimedOut(r, i, 0.0) for i, r in enumerate(requests)]
    assert pair.esme.window_free == 3


def test_response_timeout_is_reported_as_request_timed_out_never_as_a_status() -> None:
    pair = bound_pair()
    request = submit(pair, context="ctx", now=0.0)
    pair.shuttle()
    events = pair.esme.handle_timer(60.0)
    assert events == [RequestTimedOut(request, "ctx", 0.0)]
    late = SubmitSmResp(sequence_number=request.sequence_number, message_id="late")
    pair.smsc.send_response(late)
    assert pair.shuttle(now=61.0).esme == [UnexpectedResponse(late)]


def test_each_request_times_out_at_its_own_deadline() -> None:
    pair = bound_pair()
    a = submit(pair, now=0.0)
    b = submit(pair, now=10.0)
    assert pair.esme.next_deadline() == 30.0  # the keep-alive comes first
    pair.esme._last_rx = 1000.0  # keep the keep-alive out of this test
    assert pair.esme.next_deadline() == 60.0
    assert pair.esme.handle_timer(59.9) == []
    assert pair.esme.handle_timer(60.0) == [RequestTimedOut(a, None, 0.0)]
    assert pair.esme.next_deadline() == 70.0
    assert pair.esme.handle_timer(70.0) == [RequestTimedOut(b, None, 10.0)]


def test_a_wrong_kind_response_is_unexpected_and_the_request_keeps_its_deadline() -> None:
    pair = bound_pair()
    a = submit(pair, now=0.0)
    b = submit(pair, now=10.0)
    pair.shuttle()
    wrong = DeliverSmResp(sequence_number=a.sequence_number)
    pair.smsc.send_response(wrong)
    assert pair.shuttle(now=20.0).esme == [UnexpectedResponse(wrong)]
    assert pair.esme.in_flight == 2
    pair.esme._last_rx = 1000.0  # keep the keep-alive out of this test
    assert pair.esme.next_deadline() == 60.0
    assert pair.esme.handle_timer(60.0) == [RequestTimedOut(a, None, 0.0)]
    assert pair.esme.handle_timer(70.0) == [RequestTimedOut(b, None, 10.0)]


def test_the_right_response_after_a_wrong_kind_one_still_matches() -> None:
    pair = bound_pair()
    a = submit(pair, context="a", now=0.0)
    pair.shuttle()
    pair.smsc.send_response(DeliverSmResp(sequence_number=a.sequence_number))
    right = SubmitSmResp(sequence_number=a.sequence_number, message_id="m")
    pair.smsc.send_response(right)
    ex = pair.shuttle()
    assert ex.esme[1:] == [ResponseReceived(a, right, "a", 0.0)]
    assert pair.esme.in_flight == 0


def test_a_request_that_cannot_be_encoded_takes_no_window_slot_and_never_times_out() -> None:
    pair = bound_pair()
    bad = SubmitSm(destination_addr="447700900123", source_addr="A\x00B", short_message=b"x")
    with pytest.raises(EncodeError):
        pair.esme.send_request(bad, pair.now, "bad")
    assert pair.esme.in_flight == 0
    assert pair.esme.data_to_send() == b""
    events = pair.esme.handle_timer(pair.now + CONFIG.response_timeout + 1)
    assert not of_type(events, RequestTimedOut)


# -- enquire_link -------------------------------------------------------------------------

LINK = SessionConfig(window=3, response_timeout=25.0, enquire_link_interval=10.0)


def test_enquire_link_is_sent_after_the_idle_interval() -> None:
    pair = bound_pair(config=LINK)
    assert pair.esme.next_deadline() == 10.0
    assert pair.esme.handle_timer(9.99) == []
    assert pair.esme.data_to_send() == b""
    assert pair.esme.handle_timer(10.0) == []
    (probe,) = decode_all(pair.esme.data_to_send())
    assert isinstance(probe, EnquireLink)


def test_only_one_enquire_link_is_in_flight_while_it_is_unanswered() -> None:
    pair = bound_pair(config=LINK)
    sent: list[Pdu] = []
    for now in (10.0, 20.0, 30.0, 34.9):
        assert pair.esme.handle_timer(now) == []
        sent += decode_all(pair.esme.data_to_send())
    assert [p.name for p in sent] == ["enquire_link"]


def test_answered_enquire_link_is_silent_and_restarts_the_idle_timer() -> None:
    pair = bound_pair(config=LINK)
    pair.esme.handle_timer(10.0)
    ex = pair.shuttle(now=11.0)
    assert ex.esme == [] and ex.smsc == []
    assert isinstance(pair.smsc_sent[-1], EnquireLinkResp)
    assert pair.esme.next_deadline() == 21.0
    pair.esme.handle_timer(21.0)
    assert [p.name for p in decode_all(pair.esme.data_to_send())] == ["enquire_link"]


def test_traffic_from_the_peer_postpones_the_enquire_link() -> None:
    pair = bound_pair(config=LINK)
    pair.smsc.send_request(DeliverSm(short_message=b"mo"), 8.0)
    pair.shuttle(now=8.0)
    assert pair.esme.next_deadline() == 18.0


def test_enquire_link_timeout_fails_the_link_and_reports_every_pending_request() -> None:
    pair = bound_pair(config=LINK)
    pair.esme.handle_timer(10.0)  # the probe, due at 35
    a = submit(pair, context="a", now=12.0)
    b = submit(pair, context="b", now=13.0)
    events = pair.esme.handle_timer(35.0)
    assert events[:2] == [RequestTimedOut(a, "a", 12.0), RequestTimedOut(b, "b", 13.0)]
    assert isinstance(events[2], LinkFailed) and "enquire_link" in events[2].reason
    assert len(events) == 3
    assert pair.esme.state is State.CLOSED
    assert (pair.esme.in_flight, pair.esme.next_deadline()) == (0, None)


def test_enquire_link_from_the_peer_is_answered_by_the_session_itself() -> None:
    pair = bound_pair()
    seq = pair.smsc.send_request(EnquireLink(), 5.0)
    ex = pair.shuttle(now=5.0)
    assert ex.esme == [] and ex.smsc == []
    assert pair.esme_sent[-1] == EnquireLinkResp(sequence_number=seq)
    assert pair.smsc._pending == {}


def test_enquire_link_before_bind_is_answered() -> None:
    for role in Role:
        session = Session(role, CONFIG)
        assert session.receive_data(encode(EnquireLink(sequence_number=42)), 1.0) == []
        assert decode_all(session.data_to_send()) == [EnquireLinkResp(sequence_number=42)]


# -- unbind -------------------------------------------------------------------------------


def test_unbind_by_the_esme_closes_both_sides() -> None:
    pair = bound_pair()
    pair.esme.unbind(1.0)
    assert pair.esme.state is State.UNBINDING
    ex = pair.shuttle(now=1.0)
    assert ex.smsc == [Unbound(by_peer=True)]
    assert ex.esme == [Unbound(by_peer=False)]
    assert pair.esme.state is pair.smsc.state is State.CLOSED
    assert isinstance(pair.smsc_sent[-1], UnbindResp)


def test_unbind_by_the_smsc_closes_both_sides() -> None:
    pair = bound_pair()
    pair.smsc.unbind(1.0)
    ex = pair.shuttle(now=1.0)
    assert ex.esme == [Unbound(by_peer=True)]
    assert ex.smsc == [Unbound(by_peer=False)]
    assert pair.esme.state is pair.smsc.state is State.CLOSED


def test_while_unbinding_the_esme_takes_receipts_but_sends_no_new_request() -> None:
    pair = bound_pair()
    receipt = DeliverSm(esm_class=0x04, short_message=b"id:1 stat:DELIVRD")
    pair.smsc.send_request(receipt, 1.0)  # already on its way when the unbind crosses it
    pair.esme.unbind(1.0)
    with pytest.raises(LocalProtocolError):
        submit(pair)
    ex = pair.shuttle(now=1.0)
    assert ex.esme == [RequestReceived(receipt), Unbound(by_peer=False)]


def test_unbind_not_answered_fails_the_link() -> None:
    pair = bound_pair()
    pair.esme.unbind(1.0)
    events = pair.esme.handle_timer(61.0)
    assert isinstance(events[-1], LinkFailed) and "unbind" in events[-1].reason
    assert pair.esme.state is State.CLOSED


def test_unbind_when_not_bound_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Session(Role.ESME, CONFIG).unbind(0.0)


def test_nothing_after_the_peers_unbind_is_read() -> None:
    pair = bound_pair()
    data = encode(Unbind(sequence_number=9)) + encode(SubmitSm(sequence_number=10))
    assert pair.smsc.receive_data(data, 1.0) == [Unbound(by_peer=True)]
    assert decode_all(pair.smsc.data_to_send()) == [UnbindResp(sequence_number=9)]


# -- wrong state, refusals, surprises -----------------------------------------------------


def expect_answer(session: Session, request: Pdu, status: int) -> None:
    events = session.receive_data(encode(request), 1.0)
    assert len(events) == 1 and isinstance(events[0], ProtocolError)
    assert events[0].error.command_status == status
    assert request.RESPONSE is not None
    expected = request.RESPONSE(sequence_number=request.sequence_number, command_status=status)
    assert decode_all(session.data_to_send()) == [expected]


def test_submit_sm_before_bind_is_answered_with_rinvbndsts() -> None:
    expect_answer(Session(Role.SMSC, CONFIG), SubmitSm(sequence_number=5), Status.RINVBNDSTS)


def test_second_bind_is_answered_with_ralybnd() -> None:
    pair = bound_pair()
    expect_answer(pair.smsc, BindTransceiver(sequence_number=7, system_id="x"), Status.RALYBND)
    assert pair.smsc.state is State.BOUND_TRX
    with pytest.raises(LocalProtocolError):
        pair.esme.bind(BindType.TRX, 1.0, system_id="x", password="y")


def test_bind_while_a_bind_is_waiting_for_its_answer_is_answered_with_ralybnd() -> None:
    smsc = Session(Role.SMSC, CONFIG)
    first = smsc.receive_data(encode(BindTransceiver(sequence_number=1, system_id="a")), 0.0)
    assert isinstance(first[0], BindRequested)
    assert smsc.receive_data(encode(BindTransceiver(sequence_number=2, system_id="b")), 0.0) == []
    assert decode_all(smsc.data_to_send()) == [
        BindTransceiverResp(sequence_number=2, command_status=Status.RALYBND)
    ]


def test_deliver_sm_on_a_transmitter_bind_is_refused() -> None:
    pair = bound_pair(BindType.TX)
    with pytest.raises(LocalProtocolError):
        pair.smsc.send_request(DeliverSm(), 1.0)
    expect_answer(pair.esme, DeliverSm(sequence_number=11), Status.RINVBNDSTS)


def test_submit_sm_on_a_receiver_bind_is_refused() -> None:
    pair = bound_pair(BindType.RX)
    with pytest.raises(LocalProtocolError):
        submit(pair)
    expect_answer(pair.smsc, SubmitSm(sequence_number=12), Status.RINVBNDSTS)


def test_a_response_matching_no_request_is_an_unexpected_response() -> None:
    pair = bound_pair()
    stray = SubmitSmResp(sequence_number=999, message_id="x")
    pair.smsc.send_response(stray)
    assert pair.shuttle().esme == [UnexpectedResponse(stray)]
    assert pair.esme.state is State.BOUND_TRX


def test_abandon_hands_back_every_request_in_flight() -> None:
    pair = bound_pair()
    a = submit(pair, context="a", now=1.0)
    q = QuerySm(message_id="m")
    pair.esme.send_request(q, 2.0, "q")
    lost = pair.esme.abandon()
    assert lost == [RequestTimedOut(a, "a", 1.0), RequestTimedOut(q, "q", 2.0)]
    assert pair.esme.state is State.CLOSED
    assert (pair.esme.in_flight, pair.esme.data_to_send(), pair.esme.next_deadline()) == (
        0,
        b"",
        None,
    )
    assert pair.esme.abandon() == []


def test_undecodable_response_is_reported_but_never_answered() -> None:
    pair = bound_pair()
    broken = frame(CommandId.SUBMIT_SM_RESP, b"no-nul", seq=2)
    events = pair.esme.receive_data(broken, 1.0)
    assert len(events) == 1 and isinstance(events[0], ProtocolError)
    assert events[0].error.command_status == Status.RINVMSGID
    assert pair.esme.data_to_send() == b""


def test_fatal_frame_error_closes_the_session_with_a_generic_nack() -> None:
    smsc = Session(Role.SMSC, CONFIG)
    events = smsc.receive_data(b"\x00\x00\x00\x08" + b"\x00" * 12, 1.0)
    assert isinstance(events[0], ProtocolError) and isinstance(events[1], LinkFailed)
    assert smsc.state is State.CLOSED
    assert decode_all(smsc.data_to_send()) == [
        GenericNack(sequence_number=0, command_status=Status.RINVCMDLEN)
    ]


# -- the permission table, exhaustively ---------------------------------------------------

C = CommandId
REQUEST_IDS = [c for c in CommandId if not c & RESPONSE_BIT] + [0x00000099, 0x00010000]
_BINDS: set[int] = {C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER}
_FROM_SMSC: set[int] = {C.ENQUIRE_LINK, C.UNBIND, C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION}
_FROM_ESME: set[int] = {
    C.ENQUIRE_LINK,
    C.UNBIND,
    C.SUBMIT_SM,
    C.DATA_SM,
    C.QUERY_SM,
    C.CANCEL_SM,
    C.REPLACE_SM,
}

# What each side takes from its peer, written from spec section 2.3 and each PDU's section 4
# entry: enquire_link is answered in every state (kept before bind, as carriers send it);
# an unbinding ESME still drains deliver_sm; the SMSC never enters BINDING. data_sm reaches
# a transmitter-bound ESME (the SMSC may send it on any bind) but not an SMSC from a
# receiver-bound ESME, which sends nothing but enquire_link and unbind.
SPEC_ACCEPTS: dict[tuple[Role, State], set[int]] = {
    (Role.ESME, State.OPEN): {C.ENQUIRE_LINK, C.OUTBIND},
    (Role.ESME, State.BINDING): {C.ENQUIRE_LINK},
    (Role.ESME, State.BOUND_TX): {C.ENQUIRE_LINK, C.UNBIND, C.DATA_SM},
    (Role.ESME, State.BOUND_RX): _FROM_SMSC,
    (Role.ESME, State.BOUND_TRX): _FROM_SMSC,
    (Role.ESME, State.UNBINDING): _FROM_SMSC,
    (Role.SMSC, State.OPEN): {C.ENQUIRE_LINK} | _BINDS,
    (Role.SMSC, State.BINDING): set(),
    (Role.SMSC, State.BOUND_TX): _FROM_ESME,
    (Role.SMSC, State.BOUND_RX): {C.ENQUIRE_LINK, C.UNBIND},
    (Role.SMSC, State.BOUND_TRX): _FROM_ESME,
    (Role.SMSC, State.UNBINDING): {C.ENQUIRE_LINK, C.UNBIND},
}
BIND_TYPE_OF: dict[int, BindType] = {
    C.BIND_TRANSMITTER: BindType.TX,
    C.BIND_RECEIVER: BindType.RX,
    C.BIND_TRANSCEIVER: BindType.TRX,
}
TABLE = list(itertools.product(Role, State, REQUEST_IDS))


@pytest.mark.parametrize(
    "role,state,command_id",
    TABLE,
    ids=[f"{r.value}-{s.value}-0x{c:x}" for r, s, c in TABLE],
)
def test_every_request_in_every_state_is_delivered_or_answered(
    role: Role, state: State, command_id: int
) -> None:
    session = Session(role, CONFIG)
    session.state = state
    cls = PDU_CLASSES.get(command_id)
    wire = encode(cls(sequence_number=77)) if cls else frame(command_id, seq=77)
    events = session.receive_data(wire, 1.0)
    out = decode_all(session.data_to_send())

    if state is State.CLOSED:
        assert (events, out) == ([], [])
    elif cls is None:
        assert len(events) == 1 and isinstance(events[0], ProtocolError)
        assert events[0].error.command_status == Status.RINVCMDID
        assert out == [GenericNack(sequence_number=77, command_status=Status.RINVCMDID)]
    elif command_id in SPEC_ACCEPTS[(role, state)]:
        if command_id == C.ENQUIRE_LINK:
            assert (events, out) == ([], [EnquireLinkResp(sequence_number=77)])
        elif command_id == C.UNBIND:
            assert (events, out) == ([Unbound(by_peer=True)], [UnbindResp(sequence_number=77)])
            assert session.state is State.CLOSED
        elif command_id in _BINDS:
            request = cls(sequence_number=77)
            assert isinstance(request, Bind)
            assert events == [BindRequested(request, BIND_TYPE_OF[command_id])]
            assert out == []
        else:
            assert (events, out) == ([RequestReceived(cls(sequence_number=77))], [])
    else:
        status = (
            Status.RALYBND if command_id in _BINDS and state in BOUND_STATES else Status.RINVBNDSTS
        )
        assert len(events) == 1 and isinstance(events[0], ProtocolError)
        assert events[0].error.command_status == status
        if cls.RESPONSE is None:  # outbind and alert_notification take no answer
            assert out == []
        else:
            assert out == [cls.RESPONSE(sequence_number=77, command_status=status)]
        assert session.state is state


# -- hostile input ------------------------------------------------------------------------


def _session(role: Role, bound: bool) -> Session:
    if not bound:
        return Session(role, CONFIG)
    pair = bound_pair()
    return pair.esme if role is Role.ESME else pair.smsc


@pytest.mark.parametrize("bound", [False, True], ids=["open", "bound"])
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@fuzz_settings
@given(data=st.data())
def test_random_byte_streams_produce_only_events_and_decodable_output(
    role: Role, bound: bool, data: st.DataObject
) -> None:
    session = _session(role, bound)
    stream = data.draw(byte_streams)
    now = 1.0
    for chunk in data.draw(chunked(stream)):
        now += 0.5
        events = session.receive_data(chunk, now)
        assert all(isinstance(e, Event) for e in events)
        for pdu in decode_all(session.data_to_send()):
            assert pdu.is_response  # the session answers; it never asks on its own here
        events = session.handle_timer(now)
        assert all(isinstance(e, Event) for e in events)
        if any(isinstance(e, LinkFailed) for e in events):
            assert session.state is State.CLOSED


@st.composite
def broken_requests(draw: st.DrawFn) -> bytes:
    """A request frame with a correct command_length whose content does not decode."""
    data = bytearray(draw(mutated_frames(request_pdus)))
    data[len(data) : 16] = bytes(max(0, 16 - len(data)))
    data[4] &= 0x7F  # keep it a request
    data[0:4] = len(data).to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@fuzz_settings
@given(broken_requests())
def test_an_undecodable_request_is_answered_with_generic_nack_carrying_its_status(
    role: Role, wire: bytes
) -> None:
    try:
        decode(wire)
    except DecodeError as err:
        error = err
    else:
        return  # the mutation left a valid PDU; other tests cover those
    session = Session(role, CONFIG)
    events = session.receive_data(wire, 1.0)
    assert len(events) == 1 and isinstance(events[0], ProtocolError)
    assert events[0].error.command_status == error.command_status
    assert decode_all(session.data_to_send()) == [
        GenericNack(sequence_number=error.sequence_number, command_status=error.command_status)
    ]
    assert session.state is State.OPEN
