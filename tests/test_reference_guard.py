"""The golden reference data is optional on a developer's machine and mandatory under CI."""
import pytest

from conftest import require_reference


def test_missing_reference_skips_outside_ci(tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        require_reference(tmp_path / "models.pt")


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_missing_reference_fails_under_ci(tmp_path, monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI must compare against the original code's goldens"):
        require_reference(tmp_path / "models.pt")


def test_present_reference_is_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    path = tmp_path / "models.pt"
    path.write_bytes(b"")
    assert require_reference(path) == path
