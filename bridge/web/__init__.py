"""The door: webhooks and their preview, authentication, strict JSON, metrics, OpenAPI."""
