#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A process's resident memory (RSS), from `/proc/PID/statm`, for the supervisor's log lines.
enum ResidentMemory {
    /// Bytes resident of process `pid`; nil when it cannot be read (the process is gone).
    static func bytes(ofProcess pid: pid_t) -> Int? {
        let descriptor = open("/proc/\(pid)/statm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = read(descriptor, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return self.bytes(
            statm: String(decoding: buffer[0..<count], as: UTF8.self), pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// Bytes resident from the text of `statm` (sizes in pages: total, resident, ...).
    static func bytes(statm: String, pageSize: Int) -> Int? {
        let fields = statm.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 2, let pages = Int(fields[1]), pages >= 0 else { return nil }
        return pages * pageSize
    }

    /// `12.3 MiB`, or `unknown`.
    static func describe(_ bytes: Int?) -> String {
        guard let bytes else { return "unknown" }
        let tenths = (Double(bytes) / 1_048_576 * 10).rounded() / 10
        return "\(tenths) MiB"
    }
}
