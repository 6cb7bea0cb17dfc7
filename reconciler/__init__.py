"""FreePBX extensions as code: plan and apply extensions.yaml through the GraphQL API."""

__version__ = "0.1.0"
