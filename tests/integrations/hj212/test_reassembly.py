"""Split uploads (D=1, PNUM/PNO) joined by (MN, QN), whatever the arrival order."""

from decimal import Decimal

from integrations.hj212 import Flag, Packet, Reassembler, data_ack, encode, parse

QN = "20240315110000001"


def part(pno: int, pnum: int = 3, *, mn: str = "M1", qn: str = QN, code: str | None = None) -> Packet:
    cp = {"DataTime": "20240315100000", f"{code or f'w0{pno}'}-Avg": Decimal(f"{pno}.5")}
    return parse(encode(qn=qn, st="32", cn="2061", pw="1", mn=mn, flag=7, pnum=pnum, pno=pno, cp=cp))


def test_parts_out_of_order_are_joined_in_pno_order() -> None:
    joiner = Reassembler()
    assert joiner.add(part(3)) is None
    assert joiner.add(part(1)) is None
    whole = joiner.add(part(2))
    assert whole is not None and joiner.pending == 0
    assert [(r.code, r.value) for r in whole.cp.readings] == [
        ("w01", Decimal("1.5")),
        ("w02", Decimal("2.5")),
        ("w03", Decimal("3.5")),
    ]
    assert (whole.qn, whole.mn, whole.pnum, whole.pno) == (QN, "M1", None, None)
    assert whole.flag == Flag(version=1, split=False, ack=True) and not whole.is_split


def test_each_part_is_acked_with_its_own_qn() -> None:
    ack = parse(data_ack(part(2)))
    assert (ack.cn, ack.qn) == ("9014", QN)


def test_a_retransmitted_part_replaces_the_earlier_copy() -> None:
    joiner = Reassembler()
    joiner.add(part(1, 2, code="old"))
    joiner.add(part(1, 2, code="new"))
    whole = joiner.add(part(2, 2))
    assert whole is not None and [r.code for r in whole.cp.readings] == ["new", "w02"]


def test_interleaved_uploads_of_two_stations_stay_apart() -> None:
    joiner = Reassembler()
    assert joiner.add(part(1, 2, mn="A")) is None
    assert joiner.add(part(1, 2, mn="B")) is None
    whole_b = joiner.add(part(2, 2, mn="B"))
    whole_a = joiner.add(part(2, 2, mn="A"))
    assert whole_a is not None and whole_a.mn == "A"
    assert whole_b is not None and whole_b.mn == "B"


def test_unsplit_packet_passes_straight_through() -> None:
    packet = parse(encode(qn=QN, st="32", cn="2011", pw="1", mn="M1", flag=5))
    assert Reassembler().add(packet) is packet


def test_single_part_upload_completes_at_once() -> None:
    whole = Reassembler().add(part(1, 1))
    assert whole is not None and whole.pnum is None and len(whole.cp.readings) == 1


def test_oldest_incomplete_upload_is_evicted_beyond_max_pending() -> None:
    joiner = Reassembler(max_pending=2)
    for qn in ("20240315110000001", "20240315110000002", "20240315110000003"):
        joiner.add(part(1, 2, qn=qn))
    assert (joiner.pending, joiner.evicted) == (2, 1)
    assert joiner.add(part(2, 2, qn="20240315110000001")) is None  # its first part was evicted
    assert joiner.evicted == 2  # re-opening it pushed out the next oldest
    assert joiner.discard(("M1", "20240315110000003")) and not joiner.discard(("M1", "nope"))


def test_custom_key_joins_parts_that_carry_their_own_qn() -> None:
    joiner = Reassembler(key=lambda p: (p.mn, p.cn, p.cp.data_time))
    assert joiner.add(part(1, 2, qn="20240315110000001")) is None
    whole = joiner.add(part(2, 2, qn="20240315110000002"))
    assert whole is not None and whole.qn == "20240315110000001"
