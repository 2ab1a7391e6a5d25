import Hummingbird

/// A streamed download: byte i is i % 256, written 64 KiB at a time as the client takes them.
enum PatternBody {
    static let chunkSize = 64 * 1024

    static func make(size: Int) -> ResponseBody {
        ResponseBody(contentLength: size) { writer in
            let block = ByteBuffer(bytes: (0..<(Self.chunkSize + 256)).map { UInt8(truncatingIfNeeded: $0) })
            var written = 0
            while written < size {
                let count = min(Self.chunkSize, size - written)
                // Each chunk starts where the pattern is at `written`.
                try await writer.write(block.getSlice(at: written % 256, length: count)!)
                written += count
            }
            try await writer.finish(nil)
        }
    }
}
