"""Helpers shared by the reproduction tests: the PNG check and the "nothing recomputed" guard."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(*paths):
    """Each path is a PNG file (checked by its 8-byte signature)."""
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"


def forbid(monkeypatch, owner, *names):
    """Replace ``owner.<name>`` for each name by a function that fails the test when called:
    a resumed run must not recompute a finished piece."""
    def fail(*args, **kwargs):
        raise AssertionError(f"a finished piece was recomputed ({', '.join(names)})")

    for name in names:
        monkeypatch.setattr(owner, name, fail)
