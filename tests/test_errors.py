from qsci.errors import InputFileError, QSCIError


def test_input_file_error_names_the_file_and_stays_one_line():
    err = InputFileError("/tmp/some/dir/meas.npy", "file is empty (0 bytes)")
    assert isinstance(err, QSCIError) and str(err) == "meas.npy: file is empty (0 bytes)"
    evil = InputFileError("/tmp/evil\nname.npy", "file is empty (0 bytes)")
    assert "\n" not in str(evil) and str(evil).startswith("evil\\nname.npy: ")
