"""What the proxy and the row builder both read: SSE framing and reassembly, the summary of a
JSON body cut in the middle, model identity. Pure, and imports no stage."""
