"""Test tools shared by the test modules: fakes the tests control."""
