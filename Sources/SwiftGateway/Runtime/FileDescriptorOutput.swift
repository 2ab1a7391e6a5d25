#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Unbuffered output to a file descriptor, one `write(2)` per call where the kernel allows,
/// so lines from several processes sharing Apache's error log do not interleave.
struct FileDescriptorOutput: Sendable {
    let descriptor: CInt

    static let standardError = FileDescriptorOutput(descriptor: 2)

    func write(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(self.descriptor, base + offset, raw.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
