"""Edge: the vendor-facing HTTP server. It acknowledges a callback only once it is durable."""
