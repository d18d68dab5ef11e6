"""GSM 03.38 / UCS-2 choice and the splitting of texts into SMS parts."""

import random

import pytest

from gateway.sms.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    EncodedText,
    TextTooLong,
    check_parts,
    gsm7_septets,
    split_sms,
)

# A Burgernet alert of exactly 300 characters. "België" (ë) and "geïnteresseerd" (ï) are not
# in the GSM alphabet, so the whole text goes UCS-2; "€" is not astral, so it costs one unit.
DUTCH_300 = (
    "Burgernet: de politie zoekt een vermiste man van 82 jaar uit België, 1,80 m lang, grijs haar, "
    "blauwe jas en een bruine tas met ongeveer €50 erin. Hij is rond 14.00 uur vertrokken bij het station. "
    "Ziet u hem? Bel direct 112. Bent u geïnteresseerd in de afloop, kijk dan op burgernet.nl. Hartelijk dank"
)

EMOJI = "\U0001f6a8"  # police car light: outside the BMP, a surrogate pair in UTF-16


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-be")) // 2


def _assert_valid(encoded: EncodedText, text: str) -> None:
    assert "".join(encoded.parts) == text
    assert all(encoded.parts)
    if encoded.encoding == "gsm7":
        limit = 160 if encoded.part_count == 1 else 153
        assert all(gsm7_septets(part) <= limit for part in encoded.parts)
        assert encoded.units == gsm7_septets(text)
    else:
        limit = 70 if encoded.part_count == 1 else 67
        assert all(_utf16_units(part) <= limit for part in encoded.parts)
        assert encoded.units == _utf16_units(text)


def test_alphabet_tables():
    assert len(GSM7_BASIC) == 127  # 128 positions minus ESC
    assert "\x1b" not in GSM7_BASIC
    assert set("^{}\\[~]|€\f") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION
    for char in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r ":
        assert char in GSM7_BASIC
    for char in "ëïçÈáâ`":
        assert char not in GSM7_BASIC | GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "septets"),
    [
        ("", 0),
        ("abc", 3),
        ("€", 2),
        ("Prijs: € 5", 11),
        ("{}[]", 8),
        ("\f", 2),
        ("Café é", 6),
        ("België", None),
        ("geïnteresseerd", None),
        (EMOJI, None),
    ],
)
def test_gsm7_septets(text, septets):
    assert gsm7_septets(text) == septets


@pytest.mark.parametrize(
    ("length", "sizes"),
    [
        (1, [1]),
        (160, [160]),
        (161, [153, 8]),
        (306, [153, 153]),
        (307, [153, 153, 1]),
    ],
)
def test_gsm7_part_sizes(length, sizes):
    text = "a" * length
    encoded = split_sms(text)
    assert encoded.encoding == "gsm7"
    assert encoded.units == length
    assert [len(part) for part in encoded.parts] == sizes
    assert encoded.part_count == len(sizes)
    _assert_valid(encoded, text)


@pytest.mark.parametrize(
    ("length", "sizes"),
    [
        (1, [1]),
        (70, [70]),
        (71, [67, 4]),
        (134, [67, 67]),
        (135, [67, 67, 1]),
    ],
)
def test_ucs2_part_sizes(length, sizes):
    text = "ë" * length
    encoded = split_sms(text)
    assert encoded.encoding == "ucs2"
    assert encoded.units == length
    assert [len(part) for part in encoded.parts] == sizes
    _assert_valid(encoded, text)


def test_euro_counts_two_septets_in_a_single_sms():
    assert split_sms("a" * 158 + "€").part_count == 1  # 160 septets
    encoded = split_sms("a" * 159 + "€")  # 161 septets
    assert encoded.encoding == "gsm7"
    assert encoded.units == 161
    assert encoded.parts == ["a" * 153, "a" * 6 + "€"]


def test_extension_char_at_part_boundary_moves_to_next_part():
    # 152 septets, then "€" would occupy septets 153 and 154: its ESC + char pair moves whole.
    text = "a" * 152 + "€" + "b" * 20
    encoded = split_sms(text)
    assert encoded.parts == ["a" * 152, "€" + "b" * 20]
    assert encoded.units == 174
    _assert_valid(encoded, text)


def test_extension_char_exactly_filling_a_part_stays():
    text = "a" * 151 + "€" + "b" * 20  # "€" is septets 152 and 153
    encoded = split_sms(text)
    assert encoded.parts == ["a" * 151 + "€", "b" * 20]


@pytest.mark.parametrize("before", [64, 65, 66, 67])
def test_emoji_at_part_boundary_is_not_split(before):
    text = "x" * before + EMOJI + "y" * 30
    encoded = split_sms(text)
    assert encoded.encoding == "ucs2"
    assert encoded.units == before + 2 + 30
    for part in encoded.parts:
        assert _utf16_units(part) <= 67  # and encoding raises nothing: no lone surrogate
    assert sum(EMOJI in part for part in encoded.parts) == 1
    if before == 66:  # units 67 and 68 would straddle the cut
        assert encoded.parts[0] == "x" * 66
        assert encoded.parts[1].startswith(EMOJI)
    _assert_valid(encoded, text)


def test_a_single_emoji_switches_to_ucs2():
    assert split_sms("a" * 100).part_count == 1
    encoded = split_sms("a" * 100 + EMOJI)
    assert encoded.encoding == "ucs2"
    assert encoded.units == 102
    assert encoded.part_count == 2


def test_dutch_text_with_euro_and_e_diaeresis_goes_ucs2_in_five_parts():
    # By hand: 300 characters, none outside the BMP, so 300 UTF-16 units. Over 70, so it is
    # concatenated at 67 units a part: 4 × 67 = 268 < 300 ≤ 335 = 5 × 67, hence 5 parts,
    # cut greedily as 67 + 67 + 67 + 67 + 32.
    assert len(DUTCH_300) == 300
    assert "€" in DUTCH_300 and "ë" in DUTCH_300
    encoded = split_sms(DUTCH_300)
    assert encoded.encoding == "ucs2"
    assert encoded.units == 300
    assert encoded.part_count == 5
    assert [len(part) for part in encoded.parts] == [67, 67, 67, 67, 32]
    _assert_valid(encoded, DUTCH_300)


def test_same_dutch_text_without_diaereses_fits_two_gsm_parts():
    # Without ë and ï it is GSM 7-bit: 300 characters + 1 extra septet for "€" = 301 septets,
    # 153 + 148, so two parts instead of five.
    plain = DUTCH_300.replace("ë", "e").replace("ï", "i")
    encoded = split_sms(plain)
    assert encoded.encoding == "gsm7"
    assert encoded.units == 301
    assert encoded.part_count == 2


def test_empty_text_raises():
    with pytest.raises(ValueError, match="empty text"):
        split_sms("")


def test_lone_surrogate_is_rejected():
    with pytest.raises(ValueError):
        split_sms("abc\ud83d")


def test_random_texts_round_trip():
    rng = random.Random(20241122)
    alphabet = sorted(GSM7_BASIC) + sorted(GSM7_EXTENSION) + list("ëïç") + [EMOJI, "\u00e9"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400)))
        _assert_valid(split_sms(text), text)


def test_check_parts_within_limit():
    encoded = check_parts(DUTCH_300, max_parts=5)
    assert encoded.part_count == 5


def test_check_parts_raises_with_count_and_maximum():
    text = "ë" * 512  # 7 × 67 = 469 < 512 ≤ 536 = 8 × 67
    with pytest.raises(TextTooLong) as info:
        check_parts(text, max_parts=6)
    assert str(info.value) == "the text needs 8 SMS parts (UCS-2, 512 characters); the maximum is 6"
    assert isinstance(info.value, ValueError)
    assert info.value.encoded.part_count == 8
    assert info.value.max_parts == 6


def test_check_parts_message_for_gsm7():
    expected = r"needs 3 SMS parts \(GSM 7-bit, 307 characters\); the maximum is 2"
    with pytest.raises(TextTooLong, match=expected):
        check_parts("a" * 307, max_parts=2)


def test_check_parts_rejects_nonsense_maximum():
    with pytest.raises(ValueError, match="max_parts"):
        check_parts("hallo", max_parts=0)
