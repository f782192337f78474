"""The edge's API described: the OpenAPI 3.1 document the edge serves at ``GET /openapi.json``, built.

The document is assembled from the route table (``ringback.routes``), the request bodies described
beside each adapter (``ringback.normalizer.adapters.<format>_schema``), the reply styles
(``ringback.edge.replies``) and the statuses of the door and the connection layer, with request examples
taken from the golden fixtures. ``make docs`` writes it to ``schemas/openapi.json`` — reviewed in diffs
like the Avro schema and the DDL, usable by tools without a running edge — which the edge only loads and
serves (``ringback.edge.openapi``). ``tests/unit/test_openapi.py`` fails when the file differs from what
this builds, when a route of the table is undocumented or when the document names a route the edge does
not serve.
"""
