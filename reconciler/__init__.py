"""FreePBX extensions as code: plan and apply extensions.yaml over the GraphQL API."""

__version__ = "0.1.0"
