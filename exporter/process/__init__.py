"""The process plumbing every stage leans on: log lines (logfmt or JSON), the malloc tuning that
keeps a large poll's memory from staying behind, the worker threads, and listen addresses.

It imports nothing else of the exporter, so any part may use it.
"""
