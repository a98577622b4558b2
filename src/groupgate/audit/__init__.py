"""The audit trail (issue 14): every decision recorded once, in one shape, to the sinks the
deployment names, without ever blocking or slowing a decision.

- `record.py`: the record's shape and how it is serialised (masking included);
- `sinks.py`: where records go (stdout, a rotated file, a capped Redis stream);
- `trail.py`: the bounded buffer between the request path and the sinks, written in batches
  by a background task; what does not fit is dropped, counted and logged, never silently.
"""
