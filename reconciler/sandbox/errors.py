"""Exceptions that resolvers raise to shape the GraphQL error a client receives."""


class ClientSafeError(Exception):
    """An error FreePBX shows to the client with its own message.

    Core catches some PHP exceptions and makes their text the reply, for
    example the SQLSTATE message of a value too long for its column. Every
    other exception in a resolver reaches the client as "Internal server error".
    """


class InternalError(Exception):
    """A failure FreePBX reports only as "Internal server error"."""


class NotEmulated(InternalError):
    """A root field that the sandbox does not implement."""
