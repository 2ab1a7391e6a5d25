import HTTPTypes
import NIOCore

/// The CGI response header block (`Status:` line, fields, blank line) that Apache parses.
enum CGIResponseHead {
    static func serialize(
        _ response: GatewayResponse, contentLength: Int?, allocator: ByteBufferAllocator, reservingBody: Int
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 128 + response.headerFields.count * 48 + reservingBody)
        buffer.writeStaticString("Status: ")
        buffer.writeString(String(response.status.code))
        buffer.writeStaticString(" ")
        // HTTPTypes keeps reason phrases free of CR and LF.
        buffer.writeString(response.status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        var hasContentLength = false
        for field in response.headerFields {
            if field.name == .contentLength { hasContentLength = true }
            buffer.writeString(field.name.rawName)
            buffer.writeStaticString(": ")
            // HTTPField values are legalised on creation: no CR, LF or NUL can reach Apache.
            buffer.writeString(field.value)
            buffer.writeStaticString("\r\n")
        }
        if let contentLength, !hasContentLength {
            buffer.writeStaticString("Content-Length: ")
            buffer.writeString(String(contentLength))
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }
}
