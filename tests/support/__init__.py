"""What the tests share: fakes the tests control, processes they start, data they build.

Test modules import from here (and get fixtures from tests/conftest.py), never from each other.
"""
