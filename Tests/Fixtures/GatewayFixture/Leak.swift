import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Memory the /leak page allocates and never frees.
enum Leak {
    nonisolated(unsafe) private static var blocks: [UnsafeMutableRawPointer] = []
    private static let lock = NIOLock()

    static var total: Int { lock.withLock { blocks.count } }

    static func keep(megabytes: Int) {
        lock.withLock {
            for _ in 0..<max(0, min(megabytes, 4096)) {
                guard let block = malloc(1 << 20) else { return }
                memset(block, 0x5a, 1 << 20) // touch every page so it counts in RSS
                blocks.append(block)
            }
        }
    }
}
