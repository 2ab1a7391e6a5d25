import HTTPTypes
import NIOCore

/// The CGI response header block (`Status:` line, fields, blank line) that Apache parses.
enum CGIResponseHead {
    /// The block, followed by room for `reservingBody` bytes. Its size is counted first and it is
    /// copied in one pass: a `ByteBuffer` write per piece checked capacity and uniqueness a dozen
    /// times per response.
    static func serialize(
        _ response: GatewayResponse, contentLength: Int?, allocator: ByteBufferAllocator, reservingBody: Int
    ) -> ByteBuffer {
        let code = response.status.code
        // HTTPTypes keeps reason phrases free of CR and LF.
        let reason = response.status.reasonPhrase
        var size = "Status: ".utf8.count + Self.decimalDigits(code) + 1 + reason.utf8.count + 2 + 2
        var hasContentLength = false
        for field in response.headerFields {
            if field.name == .contentLength { hasContentLength = true }
            size += field.name.rawName.utf8.count + 2 + field.value.utf8.count + 2
        }
        let addedLength = hasContentLength ? nil : contentLength
        if let addedLength { size += "Content-Length: ".utf8.count + Self.decimalDigits(addedLength) + 2 }

        var buffer = allocator.buffer(capacity: size + reservingBody)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { target in
            var block = BlockWriter(target: target)
            block.append("Status: ")
            block.appendDecimal(code)
            block.append(" ")
            block.append(reason)
            block.append("\r\n")
            for field in response.headerFields {
                block.append(field.name.rawName)
                block.append(": ")
                // HTTPField values are legalised on creation: no CR, LF or NUL can reach Apache.
                block.append(field.value)
                block.append("\r\n")
            }
            if let addedLength {
                block.append("Content-Length: ")
                block.appendDecimal(addedLength)
                block.append("\r\n")
            }
            block.append("\r\n")
            return block.count
        }
        return buffer
    }

    /// Digits of a non-negative number in decimal (1 for 0).
    static func decimalDigits(_ value: Int) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        return digits
    }

    /// Copies pieces into memory sized for them beforehand.
    private struct BlockWriter {
        let target: UnsafeMutableRawBufferPointer
        var count = 0

        mutating func append(_ text: StaticString) {
            self.append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }

        mutating func append(_ text: String) {
            let copied: Void? = text.utf8.withContiguousStorageIfAvailable { self.append(UnsafeRawBufferPointer($0)) }
            if copied == nil {
                for byte in text.utf8 { self.append(byte) }
            }
        }

        mutating func appendDecimal(_ value: Int) {
            precondition(value >= 0, "negative status code or length")
            let digits = CGIResponseHead.decimalDigits(value)
            precondition(self.count + digits <= self.target.count, "response head larger than counted")
            var rest = value
            for position in stride(from: self.count + digits - 1, through: self.count, by: -1) {
                self.target[position] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            self.count += digits
        }

        private mutating func append(_ bytes: UnsafeRawBufferPointer) {
            guard let source = bytes.baseAddress, let start = self.target.baseAddress, bytes.count > 0 else { return }
            precondition(self.count + bytes.count <= self.target.count, "response head larger than counted")
            (start + self.count).copyMemory(from: source, byteCount: bytes.count)
            self.count += bytes.count
        }

        private mutating func append(_ byte: UInt8) {
            precondition(self.count < self.target.count, "response head larger than counted")
            self.target[self.count] = byte
            self.count += 1
        }
    }
}
