"""load_kamp_csv: the real KAMP layout loads unchanged; every bad input is named by line."""

import io

import numpy as np
import pytest

from meltingtank.loader import KampFormatError, load_kamp_csv

# The real KAMP export: minute-resolution timestamps (ten rows share a minute), 1/0-free tags.
REAL_KAMP = """STD_DT,NUM,MELT_TEMP,MOTORSPEED,MELT_WEIGHT,INSP,TAG
2020-03-04 0:00,0,489,116,631,3.19,OK
2020-03-04 0:00,1,433,78,609,3.19,OK
2020-03-04 0:00,2,464,154,608,3.19,OK
2020-03-04 0:00,3,379,212,606,3.19,OK
2020-03-04 0:00,4,798,1736,604,3.21,NG
2020-03-04 0:01,5,743,1722,603,3.21,OK
"""


def _csv(text: str) -> io.StringIO:
    buffer = io.StringIO(text)
    buffer.name = "tank.csv"
    return buffer


def _error(text: str) -> KampFormatError:
    with pytest.raises(KampFormatError) as info:
        load_kamp_csv(_csv(text))
    return info.value


def test_real_kamp_layout_loads_unchanged():
    frame = load_kamp_csv(_csv(REAL_KAMP))
    assert list(frame.columns) == [
        "STD_DT", "NUM", "MELT_TEMP", "MOTORSPEED", "MELT_WEIGHT", "INSP", "TAG"
    ]  # fmt: skip
    assert frame["MELT_TEMP"].tolist() == [489, 433, 464, 379, 798, 743]
    assert frame["INSP"].tolist() == [3.19, 3.19, 3.19, 3.19, 3.21, 3.21]
    assert frame["TAG"].tolist() == ["OK", "OK", "OK", "OK", "NG", "OK"]
    assert str(frame["STD_DT"].iloc[5]) == "2020-03-04 00:01:00"


def test_numeric_tags_map_one_to_ok():
    frame = load_kamp_csv(_csv(REAL_KAMP.replace(",OK\n", ",1\n").replace(",NG\n", ",0\n")))
    assert frame["TAG"].tolist() == ["OK", "OK", "OK", "OK", "NG", "OK"]


def test_second_resolution_timestamps_parse():
    text = (
        "STD_DT,MELT_TEMP,MOTORSPEED,TAG\n2020-03-04 00:00:00,1,2,OK\n2020-03-04 00:00:06,1,2,NG\n"
    )
    frame = load_kamp_csv(_csv(text))
    assert (frame["STD_DT"].diff().iloc[1]).total_seconds() == 6


def test_column_case_extra_columns_and_missing_optionals_are_tolerated():
    text = "melt_temp,MotorSpeed,tag,operator\n500,1400,ok,ann\n501,1390,ng,bob\n"
    frame = load_kamp_csv(_csv(text))
    assert list(frame.columns) == ["MELT_TEMP", "MOTORSPEED", "TAG", "operator"]
    assert frame["TAG"].tolist() == ["OK", "NG"]


def test_excel_byte_order_mark_is_ignored():
    frame = load_kamp_csv(_csv("\ufeff" + REAL_KAMP))
    assert frame.columns[0] == "STD_DT" and frame["STD_DT"].notna().all()


def test_missing_required_column_is_named():
    error = _error("STD_DT,MELT_TEMP,TAG\n2020-03-04 0:00,500,OK\n")
    assert "MOTORSPEED" in str(error) and "tank.csv" in str(error)


def test_unparsable_value_is_reported_with_its_line():
    error = _error(REAL_KAMP.replace("464,154", "46x4,154"))
    assert "MELT_TEMP: 1 value(s) that are not numbers at line 4" in str(error)
    assert "'46x4'" in str(error)


def test_nan_is_reported_with_its_line():
    error = _error(REAL_KAMP.replace("379,212", "379,"))
    assert "MOTORSPEED: 1 missing (NaN)" in str(error) and "line 5" in str(error)


def test_duplicate_timestamp_is_reported():
    text = (
        "STD_DT,MELT_TEMP,MOTORSPEED,TAG\n2020-03-04 00:00:00,1,2,OK\n"
        "2020-03-04 00:00:06,1,2,OK\n2020-03-04 00:00:06,1,2,OK\n"
    )
    error = _error(text)
    assert "STD_DT: 1 duplicate timestamp(s) at line 4" in str(error)


def test_unordered_timestamp_is_reported():
    text = (
        "STD_DT,MELT_TEMP,MOTORSPEED,TAG\n2020-03-04 00:00:12,1,2,OK\n"
        "2020-03-04 00:00:06,1,2,OK\n2020-03-04 00:00:18,1,2,OK\n"
    )
    error = _error(text)
    assert "earlier than the row before at line 3" in str(error)


def test_repeated_row_number_is_a_duplicate_for_minute_stamps():
    error = _error(REAL_KAMP.replace("0:00,3,", "0:00,2,"))
    assert "NUM: 1 duplicate row number(s) at line 5" in str(error)


def test_unknown_tag_is_reported():
    error = _error(REAL_KAMP.replace("3.21,NG", "3.21,BAD"))
    assert "TAG: 1 tag(s) that are neither OK/NG nor 1/0" in str(error)
    assert "line 6" in str(error)


def test_unparsable_timestamp_is_reported():
    error = _error(REAL_KAMP.replace("2020-03-04 0:01,", "yesterday,"))
    assert "STD_DT: 1 timestamp(s) that cannot be parsed at line 7" in str(error)


def test_many_bad_rows_show_the_first_few_and_the_count():
    rows = "".join(f"2020-03-04 00:00:{i:02d},x,2,OK\n" for i in range(20))
    error = _error("STD_DT,MELT_TEMP,MOTORSPEED,TAG\n" + rows)
    assert "20 value(s) that are not numbers at line 2, 3, 4, 5, 6 (and 15 more)" in str(error)


def test_every_problem_is_reported_at_once():
    error = _error(REAL_KAMP.replace("464,154", "x,154").replace("3.21,NG", "3.21,?"))
    assert {p.column for p in error.problems} == {"MELT_TEMP", "TAG"}


def test_error_is_a_value_error_with_the_source():
    error = _error("MELT_TEMP,TAG\n1,OK\n")
    assert isinstance(error, ValueError) and error.source == "tank.csv"


def test_header_without_rows_is_refused():
    assert "no rows" in str(_error("MELT_TEMP,MOTORSPEED,TAG\n"))


def test_unlabelled_log_loads_for_prediction():
    frame = load_kamp_csv(_csv("MELT_TEMP,MOTORSPEED\n500,1400\n"), require_tag=False)
    assert "TAG" not in frame and np.isclose(frame["MELT_TEMP"].iloc[0], 500)


def test_reads_a_file_path(tmp_path):
    path = tmp_path / "kamp.csv"
    path.write_text(REAL_KAMP)
    assert len(load_kamp_csv(path)) == 6
