"""The GraphQL documents this tool sends, always with variables.

Only ``status`` and ``message`` of payloads are selected: FreePBX checks the
``status`` of the first root field to choose its HTTP status, and these two
fields exist on FreePBX 15, 16 and 17. ``fetchAllExtensions`` is read through
its ``extension`` list: ``edges`` is always null and ``pageInfo`` fails.
"""

FETCH_ALL_EXTENSIONS = """
query FetchAllExtensions {
  fetchAllExtensions {
    status
    message
    totalCount
    extension {
      extensionId
      tech
      user { name outboundCid voicemail }
      coreDevice { description emergencyCid }
    }
  }
}
"""

ADD_EXTENSION = """
mutation AddExtension($input: addExtensionInput!) {
  addExtension(input: $input) { status message }
}
"""

DO_RELOAD = """
mutation DoReload($input: doreloadInput!) {
  doreload(input: $input) { status message transaction_id }
}
"""

FETCH_API_STATUS = """
query FetchApiStatus($txnId: ID!) {
  fetchApiStatus(txnId: $txnId) { status message }
}
"""

FETCH_API_STATUS_DETAILS = """
query FetchApiStatusDetails($txnId: ID!) {
  fetchApiStatus(txnId: $txnId) { status message details }
}
"""

FETCH_NEED_RELOAD = """
query FetchNeedReload {
  fetchNeedReload { status message }
}
"""
