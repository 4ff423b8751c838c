"""The exposition: from the sources' frozen snapshots to the bytes /metrics serves.

`families` declares every metric family once; one small renderer per source writes its sample
lines (`tasks`, `requests`, `calls`, `balance`); `exposition.Renderer` joins them, re-rendering
only what changed, into an `Exposition` that the HTTP side serves as cached bytes.
"""
