"""The official-format ListOps reader, tokeniser and data-folder lookup, on small hand-written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lra.data.listops import VOCAB, VOCAB_SIZE, find_listops_files, read_listops_tsv, tokenize_listops

LINE = "( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) ] )"  # MAX(2, 9, MIN(4, 7)) = 9


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_vocabulary_is_fixed() -> None:
    assert VOCAB_SIZE == 16
    assert VOCAB == {
        "0": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10,
        "[MIN": 11, "[MAX": 12, "[MED": 13, "[SM": 14, "X": 15,
    }  # fmt: skip


def test_official_line_tokenises_to_hand_written_ids() -> None:
    ids = tokenize_listops(LINE)
    assert ids.dtype == np.uint8
    #                  [MAX  2  9 [MIN 4  7  X   X
    assert ids.tolist() == [12, 3, 10, 11, 5, 8, 15, 15]
    # Parentheses carry no tokens, wherever they are.
    assert tokenize_listops("( ( ( [MAX 2 ) 9 ) ( ( [MIN 4 ) 7 ] ) ) ] )").tolist() == ids.tolist()
    assert tokenize_listops("[SM 0 [MED 5 ] 9 ]").tolist() == [14, 1, 13, 6, 15, 10, 15]
    assert tokenize_listops("7").tolist() == [8]


def test_tokens_are_truncated_to_max_length() -> None:
    assert tokenize_listops(LINE, max_length=3).tolist() == [12, 3, 10]
    assert tokenize_listops(LINE, max_length=100).tolist() == [12, 3, 10, 11, 5, 8, 15, 15]


def test_unknown_and_missing_tokens_are_errors() -> None:
    with pytest.raises(ValueError, match=r"data\.tsv, line 5: unknown ListOps token '\[FIRST'"):
        tokenize_listops("( ( [FIRST 2 ) 3 ] )", where="data.tsv, line 5")
    with pytest.raises(ValueError, match="unknown ListOps token '12'"):
        tokenize_listops("( ( [MAX 12 ) 3 ] )")
    with pytest.raises(ValueError, match="empty expression"):
        tokenize_listops(" ( ) ")


def test_reader_yields_rows_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "basic_val.tsv", f"Source\tTarget\n{LINE}\t9\n7\t7\n")
    rows = list(read_listops_tsv(path))
    assert [(row.line, row.source, row.label) for row in rows] == [(2, LINE, 9), (3, "7", 7)]


def test_reader_accepts_crlf_line_endings(tmp_path: Path) -> None:
    # Python's csv module (which wrote the official files) ends rows with \r\n.
    path = tmp_path / "basic_val.tsv"
    path.write_bytes(f"Source\tTarget\r\n{LINE}\t9\r\n".encode())
    assert [(row.source, row.label) for row in read_listops_tsv(path)] == [(LINE, 9)]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (f"Source\tTarget\n{LINE}\t9\n{LINE}\n", 3, r"expected 2 tab-separated fields.*got 1"),
        (f"Source\tTarget\n{LINE}\t9\textra\n", 2, r"expected 2 tab-separated fields.*got 3.*extra"),
        (f"Source\tTarget\n7\t7\n{LINE}\t10\n", 3, r"expected a Target label 0-9, got '10'"),
        (f"Source\tTarget\n{LINE}\tnine\n", 2, r"expected a Target label 0-9, got 'nine'"),
        (f"Source\tTarget\n{LINE}\t2.5\n", 2, r"expected a Target label 0-9, got '2\.5'"),
        (f"{LINE}\t9\n", 1, r"expected the header 'Source\\tTarget', got '\( \( \( \("),
        ("", 1, r"expected the header"),
    ],
    ids=["one-field", "three-fields", "label-10", "label-word", "label-float", "no-header", "empty"],
)
def test_reader_errors_name_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write(tmp_path / "basic_train.tsv", body)
    with pytest.raises(ValueError, match=rf"basic_train\.tsv, line {line}: {message}"):
        list(read_listops_tsv(path))


@pytest.mark.parametrize(
    "layout",
    [".", "listops-1000", "lra_release/listops-1000", "lra_release/lra_release/listops-1000"],
    ids=["flat", "listops-1000", "release-flattened", "release-nested"],
)
def test_data_folder_is_found_in_every_layout(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / layout
    for split in ("train", "val", "test"):
        write(folder / f"basic_{split}.tsv", "Source\tTarget\n7\t7\n")
    files = find_listops_files(tmp_path)
    assert sorted(files) == ["test", "train", "val"]
    for split, path in files.items():
        assert path.samefile(folder / f"basic_{split}.tsv")


def test_missing_root_error_names_every_path_and_the_sources(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as error:
        find_listops_files(root)
    message = str(error.value)
    assert f"{root} does not exist" in message
    for layout in ("", "listops-1000/", "lra_release/listops-1000/", "lra_release/lra_release/listops-1000/"):
        for split in ("train", "val", "test"):
            assert f"{root}/{layout}basic_{split}.tsv" in message
    assert "lra_release.gz" in message
    assert "lra data generate listops --out DIR" in message


def test_incomplete_folder_is_not_accepted(tmp_path: Path) -> None:
    write(tmp_path / "listops-1000" / "basic_train.tsv", "Source\tTarget\n7\t7\n")
    write(tmp_path / "listops-1000" / "basic_val.tsv", "Source\tTarget\n7\t7\n")
    with pytest.raises(FileNotFoundError, match="no complete set of files") as error:
        find_listops_files(tmp_path)
    assert f"{tmp_path}/listops-1000/basic_test.tsv" in str(error.value)
