"""A local emulator of the FreePBX 16 (or 17) API, for tests and demos.

`server.SandboxServer` serves the token and GraphQL endpoints and the userman
REST routes on 127.0.0.1 from a SQLite state file; `server.serve_forever`
runs one for the CLI.
"""
