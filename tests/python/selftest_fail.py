"""Harness self-test: fails on purpose. `cargo xtask test` runs it only in its self-test and
checks that it is counted as failed with this assertion as the reason."""

print("selftest: this Python test fails on purpose")
assert 1 + 1 == 3, "provoked failure: the harness must count this test as failed"
