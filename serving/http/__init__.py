"""The HTTP layer: the request chain's steps, routing and the fast dispatch, request bodies,
error answers and the Swagger page's headers."""
