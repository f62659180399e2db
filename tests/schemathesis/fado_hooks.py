"""Schemathesis hooks for FaDO's API: what the OpenAPI document cannot say.

Two request parts carry meaning no schema can express, so schema-valid
random values for them are refused by design (and tested elsewhere):

- `cursor`: only a `next_cursor` the same list returned is accepted;
- `?verify=`: storage endpoints are checked against a live S3 service
  unless `verify=false`, and random endpoints answer nothing.

For requests that are meant to be valid, these are left out or set so; the
requests meant to be invalid keep whatever was generated.
"""

import schemathesis


@schemathesis.hook
def map_case(ctx, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if case.query:
        case.query.pop("cursor", None)
    if case.operation.path.startswith("/api/storage-deployments") and case.method in (
        "POST",
        "PUT",
        "PATCH",
    ):
        case.query = dict(case.query or {}, verify="false")
    return case
